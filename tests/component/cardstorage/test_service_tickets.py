"""Card tokens go to payments-eda only (issue 11): the route's callers, checked by ticket."""

from pathlib import Path

import httpx

from qrpay.kernel.tickets import TOOLS_IDENTITY
from tests.support.component.cardstorage import card, token_call
from tests.support.services import dev_config, make_context, running_service
from tests.support.tickets import GuardedCall


async def test_card_tokens_go_to_payments_eda_only(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.put("/v1/payment-methods/card-1", json=card())).status_code == 200
    call = token_call(client)
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    for other in ("api-proxy", "cashback", TOOLS_IDENTITY):
        assert (await call.as_caller(other)).status_code == 403, other
    allowed = await call.as_caller("payments-eda")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["token"] == "tok_visa_ok"
    listing = GuardedCall(
        "cardstorage", client, "GET", "/v1/payment-methods", params={"user_id": "u1"}
    )
    await listing.assert_refused("payments-eda", wrong="api-proxy")


async def test_binding_is_for_the_tools_and_only_where_the_config_allows_them(
    tmp_path: Path,
) -> None:
    for tools_allowed, expected in ((True, 200), (False, 403)):
        config = dev_config(service_tickets={"tools_allowed": tools_allowed})
        data_dir = tmp_path / str(tools_allowed)
        data_dir.mkdir()
        ctx = make_context("cardstorage", data_dir, config=config)
        async with running_service(ctx) as (_, client):
            bind = GuardedCall(
                "cardstorage",
                client,
                "PUT",
                "/v1/payment-methods/card-1",
                "/v1/payment-methods/{method_id}",
                json=card(),
            )
            assert (await bind.as_caller("payments-eda")).status_code == 403
            assert (await bind.as_caller(TOOLS_IDENTITY)).status_code == expected
