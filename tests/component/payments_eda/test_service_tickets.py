"""payments-eda takes user headers from api-proxy only (issue 11); its own calls carry
its ticket."""

from collections.abc import Callable
from typing import Any

from qrpay.kernel.tickets import TICKET_HEADER, TOOLS_IDENTITY
from tests.support.component.payments_eda import ORDER_ID, USER, Env, public_card, signature
from tests.support.tickets import GuardedCall, claims

BASE = "/4.0/payments/v1"
PREORDER = {"service": "restaurant", "order_id": ORDER_ID, "hmac": signature()}


def preorder(pe: Env) -> GuardedCall:
    return GuardedCall(
        "payments-eda",
        pe.client,
        "GET",
        f"{BASE}/preorder",
        f"{BASE}/preorder",
        params=PREORDER,
        headers={"X-Yandex-UID": USER},
    )


async def test_user_headers_are_taken_from_api_proxy_only(pe: Env) -> None:
    pe.order()
    cards = pe.mock.json_handler(
        "/v1/payment-methods", {"payment_methods": [public_card()]}, method="GET"
    )
    call = preorder(pe)
    await call.assert_refused("api-proxy", wrong="iiko-integration")
    for other in ("eda", "transactions", "cardstorage"):
        assert (await call.as_caller(other)).status_code == 403, other
    assert cards.times_called == 0  # nobody else's X-Yandex-UID reached cardstorage
    allowed = await call.as_caller("api-proxy")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["payment_methods"] == [public_card()]
    # Its own call carried payments-eda's ticket, signed with the first key.
    ticket = cards.next_call()["headers"][TICKET_HEADER]
    assert claims(ticket, "cardstorage").source == "payments-eda"


async def test_the_tools_only_where_the_config_allows_them(
    pe_factory: Callable[..., Any],
) -> None:
    for tools_allowed, expected in ((True, 200), (False, 403)):
        async with pe_factory(service_tickets={"tools_allowed": tools_allowed}) as pe:
            pe.order()
            call = preorder(pe)
            answer = await GuardedCall(
                "payments-eda", call.client, "GET", call.path, call.route, params=PREORDER
            ).as_caller(TOOLS_IDENTITY)
            assert answer.status_code == expected, answer.text


async def test_the_pay_call_is_guarded_too(pe: Env) -> None:
    call = GuardedCall(
        "payments-eda",
        pe.client,
        "POST",
        f"{BASE}/orders",
        f"{BASE}/orders",
        json={"order_id": ORDER_ID, "hmac": signature()},
        headers={"X-Yandex-UID": USER},
    )
    await call.assert_refused("api-proxy", wrong="cashback")
