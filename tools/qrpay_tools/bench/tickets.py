"""`make bench-tickets`: CPU per call of the service-ticket work a request does (issue 20).

A focused micro-measure, for a shared box where the full benches are noisy: each step
is run N times in this process and its CPU time (``time.process_time``) divided by N.

- sign for a destination, cached: what every outgoing call pays (``TicketSigner.ticket``);
- check a known ticket, cached: what every incoming call pays (``CallerCheck.admits``:
  the verifier's cache and the allowlist);
- sign, uncached: once per destination every ``REFRESH_SECONDS``;
- check, uncached (an Ed25519 signature check): once per caller's ticket and process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from qrpay.kernel import tickets
from qrpay.kernel.callers import CallerCheck


def cpu_per_call(step: Callable[[], object], calls: int) -> float:
    """Microseconds of this process's CPU per call of ``step``."""
    started = time.process_time()
    for _ in range(calls):
        step()
    return (time.process_time() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    private = tickets.new_private_key()
    keys = (SecretStr(private),)
    public = tickets.public_half(private)
    callers = {"payments-eda": (public,)}
    signer = tickets.TicketSigner("payments-eda", lambda: keys, time.time)
    verifier = tickets.TicketVerifier("cardstorage", lambda: callers, time.time)
    refusals = Counter("refusals", "", ["route", "caller", "reason"], registry=CollectorRegistry())
    check = CallerCheck(verifier, refusals, lambda: False)
    allowed = frozenset({"payments-eda"})
    ticket = signer.ticket("cardstorage")
    assert check.verifier.verify(ticket).source in allowed
    ring = {"payments-eda": {tickets.key_id(public): tickets.public_key(public)}}
    now = int(time.time())
    few = max(args.calls // 100, 100)
    steps: list[tuple[str, Callable[[], object], int]] = [
        (
            "sign for a destination, cached (each outgoing call)",
            lambda: signer.ticket("cardstorage"),
            args.calls,
        ),
        (
            "check a known ticket, cached (each incoming call)",
            lambda: check.verifier.verify(ticket).source in allowed,
            args.calls,
        ),
        (
            "sign, uncached (per destination every 5 min)",
            lambda: tickets.sign("payments-eda", "cardstorage", private, now),
            few,
        ),
        (
            "check, uncached: Ed25519 (per caller's ticket)",
            lambda: tickets.verify(ticket, "cardstorage", ring, now),
            few,
        ),
    ]
    print(f"service tickets, CPU per call ({time.strftime('%Y-%m-%d %H:%M:%S')})")
    for name, body, calls in steps:
        print(f"  {name:<52} {cpu_per_call(body, calls):9.2f} µs  ({calls} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
