"""eda's change feed served before FastAPI's router answers exactly as the FastAPI route.

The same database is served twice: by eda as built (the fast route on) and by eda with its
fast routes taken away. Status, content type and body must be the same bytes for every
query, the refused ones included, and a refused ticket is counted once either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from qrpay.eda.app import SERVICE
from qrpay.kernel.migrations import upgrade
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.tickets import TICKET_HEADER
from tests.support.component.eda import create_body
from tests.support.served_fast import Drawn, answers_alike, drawn_requests, served_fast_paths
from tests.support.services import make_context, served_in_process
from tests.support.tickets import OTHER_KEY, refusals, signed, ticket_headers

FEED = ticket_headers("iiko-integration", to="eda")
PAYER = ticket_headers("payments-eda", to="eda")

# (name, query string, headers)
CASES: list[tuple[str, str, dict[str, str]]] = [
    ("from the start", "", FEED),
    ("blank cursor", "after=", FEED),
    ("a page of 1", "after=&limit=1", FEED),
    ("all parameters", "after=&limit=2&wait_ms=0&client_id=rest-1", FEED),
    ("another restaurant", "client_id=rest-2", FEED),
    ("leading zeros", "limit=0002&wait_ms=00", FEED),
    ("limit 0", "limit=0", FEED),
    ("limit over the page max", "limit=5001", FEED),
    ("limit at the page max", "limit=5000", FEED),
    ("limit not a number", "limit=ten", FEED),
    ("limit signed", "limit=%2B2", FEED),
    ("limit with a space", "limit=%202", FEED),
    ("limit as a float", "limit=2.0", FEED),
    ("limit blank", "limit=", FEED),
    ("limit in other digits", "limit=%D9%A2", FEED),
    ("wait over the max", "wait_ms=60001", FEED),
    ("wait negative", "wait_ms=-1", FEED),
    ("limit given twice", "limit=1&limit=3", FEED),
    ("an unknown parameter", "limit=1&verbose=1", FEED),
    ("a bad cursor", "after=not-a-cursor", FEED),
    ("a cursor too long", "after=" + "1" * 201, FEED),
    ("client id blank", "client_id=", FEED),
    ("client id too long", "client_id=" + "r" * 65, FEED),
    ("client id at its max", "client_id=" + "r" * 64, FEED),
    ("no ticket", "limit=1", {}),
    ("an empty ticket", "limit=1", {TICKET_HEADER: ""}),
    ("another service's ticket", "limit=1", ticket_headers("cashback", to="eda")),
    ("the tools' ticket", "limit=1", ticket_headers(to="eda")),
    (
        "a ticket signed by an unknown key",
        "limit=1",
        {TICKET_HEADER: signed("iiko-integration", "eda", key=OTHER_KEY)},
    ),
    (
        "a ticket for another service",
        "limit=1",
        ticket_headers("iiko-integration", to="cardstorage"),
    ),
]


def serving(ctx: ServiceContext, *, fast: bool) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return served_in_process(SERVICE, ctx, fast=fast)


@pytest.fixture
async def contexts(tmp_path: Path) -> Callable[[], ServiceContext]:
    """eda contexts over one SQLite database holding two orders of rest-1 and one of
    rest-2 (a context per app: each registers its own metrics)."""

    def context() -> ServiceContext:
        return make_context("eda", tmp_path)

    first = context()
    upgrade("eda", first.database_url())
    async with serving(first, fast=False) as client:
        for internal, restaurant in (("a", "rest-1"), ("b", "rest-1"), ("c", "rest-2")):
            body = {**create_body(internal), "client_id": restaurant}
            made = await client.post("/v1/orders", json=body, headers=FEED)
            assert made.status_code == 200, made.text
    return context


# (name, path, query): the payer's reads with path parameters the declaration refuses, or
# that another route takes first.
PATH_CASES = [
    ("NUL in an order id", "/v1/orders/a%00b", ""),
    ("NUL in a ledger's order id", "/v1/orders/a%00b/payments", ""),
    ("unknown order", "/v1/orders/nope", ""),
    ("the feed's tail, declared first", "/v1/orders/changes/tail", ""),
    ("overdue payments, declared first", "/v1/orders/payments/overdue", "updated_before=x"),
    ("a quote without its way", "/v1/orders/nope/payments/quote", ""),
    ("a quote of too many parts", "/v1/orders/nope/payments/quote", "way=parts&parts=51"),
    ("an encoded slash", "/v1/orders/a%2Fb/payments", ""),
]


# (name, URL, headers): the feed's queries, then the payer's reads.
READ_CASES = [
    *((f"feed: {name}", f"/v1/orders/changes?{query}", headers) for name, query, headers in CASES),
    *((name, f"{path}?{query}", PAYER) for name, path, query in PATH_CASES),
]


@pytest.mark.parametrize(
    ("url", "headers"), [c[1:] for c in READ_CASES], ids=[c[0] for c in READ_CASES]
)
async def test_a_read_served_fast_answers_like_the_fastapi_route(
    contexts: Callable[[], ServiceContext], url: str, headers: dict[str, str]
) -> None:
    answers = []
    for fast in (True, False):
        async with serving(contexts(), fast=fast) as client:
            answers.append(await client.get(url, headers=headers))
    fast_answer, plain_answer = answers
    assert fast_answer.status_code == plain_answer.status_code, fast_answer.text
    assert fast_answer.headers["content-type"] == plain_answer.headers["content-type"]
    assert fast_answer.content == plain_answer.content


async def test_the_fast_feed_serves_pages_and_counts_a_refusal_once(
    contexts: Callable[[], ServiceContext],
) -> None:
    async with serving(contexts(), fast=True) as client:
        page = await client.get("/v1/orders/changes?after=&limit=2", headers=FEED)
        assert page.status_code == 200
        assert [c["order_id"] for c in page.json()["changes"]] == [
            c["order_id"]
            for c in (await client.get("/v1/orders/changes", headers=FEED)).json()["changes"]
        ][:2]
        assert page.json()["more"] is True
        refused = await client.get(
            "/v1/orders/changes", headers=ticket_headers("cashback", to="eda")
        )
        assert refused.status_code == 403
        assert await refusals(client, "/v1/orders/changes", "cashback", "not_allowed") == 1
        metrics = (await client.get("/metrics")).text
    assert 'handler="/v1/orders/changes",method="GET",status="200"} 2.0' in metrics


def _short_wait(drawn: Drawn) -> Drawn:
    """A long-poll of the feed waits for a change that never comes here: a wait the route
    accepts is made 0 (one it refuses stays, so the refusal is compared too)."""
    wait = str(drawn.query.get("wait_ms", ""))
    if wait.isascii() and wait.isdigit() and int(wait) <= 60_000:
        return dataclasses.replace(drawn, query={**drawn.query, "wait_ms": "0"})
    return drawn


# The payer side's reads served fast; its writes (a payment's start and moves) are compared
# case by case in test_payments.py, as a write answered twice is not answered alike.
READS = [
    ("GET", "/v1/orders/changes"),
    ("GET", "/v1/orders/{order_id}"),
    ("GET", "/v1/orders/{order_id}/payments"),
    ("GET", "/v1/orders/{order_id}/payments/quote"),
]


async def test_requests_drawn_from_the_openapi_document_are_answered_alike(
    contexts: Callable[[], ServiceContext],
) -> None:
    async with serving(contexts(), fast=True) as fast, serving(contexts(), fast=False) as plain:
        app = SERVICE.build(contexts())
        assert set(READS) <= set(served_fast_paths(app))
        changes = (await plain.get("/v1/orders/changes", headers=FEED)).json()["changes"]
        known = changes[0]["order_id"]

        def known_order(drawn: Drawn) -> Drawn:
            path = drawn.template.replace("{order_id}", known)
            return dataclasses.replace(drawn, path=path) if path != drawn.template else drawn

        for method, path in READS:
            requests = drawn_requests(
                app, method, path, legitimate=PAYER, steer=known_order, bound=_short_wait
            )
            statuses = await answers_alike(fast, plain, requests, examples=60)
            assert {400, 200} & set(statuses), (path, statuses)
