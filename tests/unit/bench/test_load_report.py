"""The open-loop generator's bookkeeping and bench-cluster's verdicts, without processes."""

from __future__ import annotations

import asyncio

import orjson

from qrpay_tools.bench import cluster, load, pos


def test_answers_are_sorted_by_outcome_and_kind() -> None:
    assert load.classify(200, b"{}") == (load.OK, "")
    assert load.classify(503, b'{"code": "overloaded"}') == (load.REFUSED, "503 overloaded")
    assert load.classify(503, b'{"code":"eda_unavailable"}') == (
        load.REFUSED,
        "503 eda_unavailable",
    )
    assert load.classify(502, b"<html>bad gateway</html>") == (load.ERROR, "502")
    assert load.classify(500, b"[1]") == (load.ERROR, "500")


async def test_the_open_loop_starts_requests_on_schedule_whatever_the_answers_take() -> None:
    stream = load.Stream("s", rate=200, seconds=0.1)
    started: list[int] = []

    async def fire(index: int, due: float) -> None:
        started.append(index)
        await asyncio.sleep(0.05)  # slower than the spacing: the next ones start anyway
        stream.record(load.OK, 0.05)

    await load.open_loop(stream, fire)
    assert started == list(range(20))
    assert stream.count == 20
    assert 0.1 <= stream.window < 1
    assert min(stream.lags) >= 0


def stream(name: str, rate: float, **outcomes: list[float]) -> load.Stream:
    one = load.Stream(name, rate, 10)
    for outcome, latencies in outcomes.items():
        for latency in latencies:
            one.record(outcome, latency, "503 overloaded" if outcome == load.REFUSED else "")
    one.window = 10
    return one


def step(
    step_name: str, pos: load.Stream, requests: load.Stream, payments: load.Stream
) -> cluster.StepResult:
    return cluster.StepResult(
        "cluster", step_name, cluster.Load(1500, 100), pos, payments, requests
    )


def steady(step_name: str, pos: load.Stream, payments_rate: float) -> cluster.StepResult:
    """A step whose payment API requests and payments are all fast and fine."""
    return step(
        step_name,
        pos,
        stream("payment API requests", 0, ok=[0.02] * 100),
        stream("payments (to PAYED)", payments_rate, ok=[1.0] * 10),
    )


def test_the_target_is_met_only_with_no_failure_and_p99_within_the_bound() -> None:
    good = steady("target", stream("POS mix", 1500, ok=[0.01] * 100), 100)
    assert ": MET:" in cluster.target_verdict(good, 100)
    slow = steady("target", stream("POS mix", 1500, ok=[0.01] * 90 + [0.5] * 10), 100)
    assert ": NOT MET:" in cluster.target_verdict(slow, 100)
    refused = steady("target", stream("POS mix", 1500, ok=[0.01] * 100, refused=[0.001]), 100)
    verdict = cluster.target_verdict(refused, 100)
    assert ": NOT MET:" in verdict
    assert "requests refused 1," in verdict


def test_the_pos_step_judges_the_pos_and_reports_the_payments_beside_it() -> None:
    slow_payments = step(
        "pos",
        stream("POS mix", 1500, ok=[0.01] * 100),
        stream("payment API requests", 0, ok=[0.9] * 100),
        stream("payments (to PAYED)", 10, ok=[3.0] * 9, timeout=[10.0]),
    )
    verdict = cluster.pos_verdict(slow_payments, 100)
    assert ": MET:" in verdict
    assert "1 not paid in time" in verdict
    refused_pos = steady("pos", stream("POS mix", 1500, ok=[0.01] * 100, refused=[0.001]), 10)
    verdict = cluster.pos_verdict(refused_pos, 100)
    assert ": NOT MET:" in verdict
    assert "1 not answered 200" in verdict
    slow_pos = steady("pos", stream("POS mix", 1500, ok=[0.01] * 90 + [0.2] * 10), 10)
    assert ": NOT MET:" in cluster.pos_verdict(slow_pos, 100)


def test_overload_wants_fast_refusals_and_no_timeouts() -> None:
    fast = step(
        "overload",
        stream("POS mix", 3000, ok=[0.05] * 50, refused=[0.002] * 50),
        stream("payment API requests", 0, ok=[0.05] * 10, refused=[0.003] * 10),
        stream("payments (to PAYED)", 200, ok=[1.0] * 5, refused=[0.003] * 10),
    )
    verdict = cluster.overload_verdict(fast, 100)
    assert ": MET:" in verdict
    assert "60 refused with 503" in verdict
    timeouts = step(
        "overload",
        stream("POS mix", 3000, ok=[0.05] * 50, refused=[0.002] * 50, timeout=[5.0]),
        stream("payment API requests", 0, ok=[0.05] * 10),
        stream("payments (to PAYED)", 200, ok=[1.0] * 5),
    )
    assert ": NOT MET:" in cluster.overload_verdict(timeouts, 100)
    slow_refusals = step(
        "overload",
        stream("POS mix", 3000, ok=[0.05] * 50, refused=[0.8] * 50),
        stream("payment API requests", 0, ok=[0.05] * 10),
        stream("payments (to PAYED)", 200, ok=[1.0] * 5),
    )
    assert ": NOT MET:" in cluster.overload_verdict(slow_refusals, 100)


def test_a_step_that_could_not_run_says_so() -> None:
    failed = step(
        "target",
        load.Stream("POS mix", 1500, 10),
        load.Stream("payment API requests", 0, 10),
        load.Stream("payments (to PAYED)", 100, 10),
    )
    failed.error = "RuntimeError: the cluster did not start"
    assert "NOT MEASURED: RuntimeError" in cluster.target_verdict(failed, 100)
    assert cluster.rows(failed) == [
        "cluster  target    not measured: RuntimeError: the cluster did not start"
    ]


def test_the_pos_mix_is_mostly_polls_of_known_ids_and_some_new_orders() -> None:
    ids = [f"order-{i}" for i in range(50)]
    mix = pos.Mix(ids)
    requests = [mix.request(index) for index in range(2000)]
    created = [orjson.loads(body) for path, body in requests if path == "/orders"]
    polled = [orjson.loads(body) for path, body in requests if path == "/orders/list"]
    assert 0.03 < len(created) / len(requests) < 0.07
    assert len({order["internal_order_id"] for order in created}) == len(created)
    assert all(order["bill"]["amount"] == "1500.00" for order in created)
    assert all(1 <= len(poll["orders"]) <= 5 for poll in polled)
    assert {order_id for poll in polled for order_id in poll["orders"]} <= set(ids)
