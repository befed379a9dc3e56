"""Who waits on which order (``payments_eda.waits.OrderWaits``)."""

from __future__ import annotations

from qrpay.payments_eda.waits import OrderWaits


async def test_a_wake_sets_only_its_orders_waiters_and_leaving_forgets_them() -> None:
    waits = OrderWaits(lambda: 10)
    with waits.watch("a") as a1, waits.watch("a") as a2, waits.watch("b") as b:
        assert waits.count == 3
        waits.wake(["a", "c"])
        assert a1.is_set()
        assert a2.is_set()
        assert not b.is_set()
    assert waits.count == 0
    assert waits._waiting == {}


async def test_admits_up_to_max_waiting_as_configured_now() -> None:
    limit = [1]
    waits = OrderWaits(lambda: limit[0])
    assert waits.admits()
    with waits.watch("a"):
        assert not waits.admits()
        limit[0] = 2
        assert waits.admits()
