"""payments-eda's guest routes served fast answer as the same routes through FastAPI.

Requests are drawn from the OpenAPI document (tests/support/served_fast.py), valid and
invalid, with a signed order id for half of them, and sent to two instances over the same
permissive fakes of eda, cardstorage and transactions (tests/support/fuzz.py): the service
as built and the same service with every request through FastAPI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceContext
from qrpay.payments_eda.app import SERVICE
from tests.support.component.payments_eda import ORDER_ID, USER, config_for, signature
from tests.support.fuzz import Fakes, background_loop, running_fakes
from tests.support.served_fast import Drawn, answers_alike, drawn_requests, served_fast_paths
from tests.support.services import make_context, served_in_process
from tests.support.tickets import ticket_headers

# As api-proxy, the one caller whose user headers payments-eda takes, for a signed-in guest;
# with a tap's token, so a pay's payment id is the same for both (without one it is random).
GUEST = {
    **ticket_headers("api-proxy", to="payments-eda"),
    "X-Yandex-UID": USER,
    "X-Idempotency-Token": "tap-1",
}


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with background_loop() as background, running_fakes(background) as fakes:
        yield fakes


def _signed(drawn: Drawn) -> Drawn:
    """An order the fakes know, with its deep link's signature, so the route's own work is
    reached."""
    signed = {"order_id": ORDER_ID, "hmac": signature(ORDER_ID)}
    if "order_id" in drawn.query:
        return dataclasses.replace(drawn, query={**drawn.query, **signed})
    try:
        body = orjson.loads(drawn.content or b"")
    except orjson.JSONDecodeError:
        return drawn
    if isinstance(body, dict) and "order_id" in body:
        return dataclasses.replace(drawn, content=orjson.dumps({**body, **signed}))
    return drawn


def _short_wait(drawn: Drawn) -> Drawn:
    """Nobody changes a status here: a long-poll would last its whole wait."""
    wait = str(drawn.query.get("wait_ms", ""))
    if wait.isascii() and wait.isdigit() and int(wait) <= 30_000:
        return dataclasses.replace(drawn, query={**drawn.query, "wait_ms": "0"})
    return drawn


async def test_requests_drawn_from_the_openapi_document_are_answered_alike(
    fakes: Fakes, tmp_path: Path
) -> None:
    config = config_for(fakes)  # type: ignore[arg-type]

    def context() -> ServiceContext:
        # Frozen: both instances' pay limits refill alike, whatever the timing.
        return make_context(
            "payments-eda", tmp_path, config=config, queue=TaskQueue(), clock=FrozenClock()
        )

    fast_app = served_in_process(SERVICE, context(), fast=True)
    plain_app = served_in_process(SERVICE, context(), fast=False)
    async with fast_app as fast, plain_app as plain:
        routes = served_fast_paths(SERVICE.build(context()))
        assert ("POST", "/4.0/payments/v1/orders") in routes
        assert ("GET", "/4.0/payments/v1/orders") in routes
        seen: dict[str, Any] = {}
        for method, path in routes:
            requests = drawn_requests(
                SERVICE.build(context()),
                method,
                path,
                legitimate=GUEST,
                steer=_signed,
                bound=_short_wait,
            )
            seen[f"{method} {path}"] = set(await answers_alike(fast, plain, requests, examples=40))
    # Past the caller and the signature: the routes' own answers were compared too, and
    # the reads' successes (a pay drawn at random rarely names the bill's total and a card).
    assert all(statuses - {401, 403, 404} for statuses in seen.values()), seen
    reads = ("preorder", "orders", "orders/split")
    assert all(200 in seen[f"GET /4.0/payments/v1/{read}"] for read in reads), seen
