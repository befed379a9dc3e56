"""Reading wrk's `--latency` report (bench-pos): every unit wrk prints, and no crash on a gap."""

from __future__ import annotations

import math

import pytest

from qrpay_tools.bench.harness import parse_wrk

# Printed by wrk 4.1.0 (Debian) on this machine.
REAL = """\
Running 1s test @ http://127.0.0.1:18765/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.68ms  796.32us   8.02ms   70.08%
    Req/Sec   723.10     34.10   767.00     70.00%
  Latency Distribution
     50%    2.62ms
     75%    3.13ms
     90%    3.66ms
     99%    4.90ms
  719 requests in 1.00s, 1.38MB read
Requests/sec:    718.46
Transfer/sec:      1.38MB
"""

# The shape that crashed `make bench-pos`: the thread stats' "+/- Stdev" column ends in
# "50%" and "99%", above the distribution; the overloaded baseline's tail is in seconds and
# minutes; socket errors and non-2xx answers are counted.
OVERLOADED = """\
Running 1m test @ http://127.0.0.1:40000
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33ms    1.20s    1.02m    84.50%
    Req/Sec    14.76k     1.10k   17.20k    71.99%
  Latency Distribution
     50%  650.00us
     75%    1.20ms
     90%    1.85s
     99%    1.02m
  885600 requests in 1.00m, 120.10MB read
  Socket errors: connect 0, read 12, write 0, timeout 6
  Non-2xx or 3xx responses: 3
Requests/sec:  14760.00
Transfer/sec:      2.00MB
"""


def test_reads_the_figures_of_a_real_report() -> None:
    result = parse_wrk(REAL)
    assert result.rps == pytest.approx(718.46)
    assert result.requests == 719
    assert result.p50_ms == pytest.approx(2.62)
    assert result.p99_ms == pytest.approx(4.90)
    assert result.errors == 0
    assert result.socket_errors == 0


def test_reads_the_distribution_not_the_stdev_column_and_every_unit() -> None:
    result = parse_wrk(OVERLOADED)
    assert result.p50_ms == pytest.approx(0.65)
    assert result.p99_ms == pytest.approx(1.02 * 60_000)
    assert result.rps == pytest.approx(14760.0)
    assert result.requests == 885600
    assert result.errors == 12 + 6 + 3
    assert result.socket_errors == 12 + 6  # apart for the soak (issue 22)


@pytest.mark.parametrize(("text", "ms"), [("812.00us", 0.812), ("3.5s", 3500.0), ("2.00h", 7.2e6)])
def test_each_unit_wrk_prints(text: str, ms: float) -> None:
    report = REAL.replace("     99%    4.90ms", f"     99%    {text}")
    assert parse_wrk(report).p99_ms == pytest.approx(ms)


def test_a_missing_line_is_nan_not_a_crash() -> None:
    without = "\n".join(
        line for line in REAL.splitlines() if "99%" not in line and "Requests/sec" not in line
    )
    result = parse_wrk(without)
    assert math.isnan(result.p99_ms)
    assert math.isnan(result.rps)
    assert result.p50_ms == pytest.approx(2.62)
    assert math.isnan(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").p50_ms)
