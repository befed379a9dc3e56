"""The typed client against the real app over HTTP: the contract both sides agree on."""

from pathlib import Path

import pytest
from fastapi import FastAPI

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cardstorage.schemas import PaymentMethodIn
from qrpay.kernel.errors import Conflict, InvalidInput, NotFound
from tests.support.component.cardstorage import card
from tests.support.services import dev_config, make_context, point_services_at, served
from tests.support.tickets import tools_session


async def test_client_round_trips(app: FastAPI, tmp_path: Path) -> None:
    async with served(app) as base_url:
        config = point_services_at(dev_config(), base_url, "cardstorage", retries=0)
        ctx = make_context("payments-eda", tmp_path / "caller", config=config)
        client = CardstorageClient(
            session=ctx.http, dependency=ctx.dependency("cardstorage"), metrics=ctx.metrics
        )
        # No service binds cards: the tools do (qrpay up's demo cards).
        binder = CardstorageClient(
            session=tools_session(ctx),
            dependency=ctx.dependency("cardstorage"),
            metrics=ctx.metrics,
        )
        try:
            bound = await binder.bind("card-1", PaymentMethodIn.model_validate(card()))
            again = await binder.bind("card-1", PaymentMethodIn.model_validate(card()))
            listed = await client.list_for_user("u1")
            got = await client.get_for_user("u1", "card-1")
            with pytest.raises(NotFound) as not_found:
                await client.get_for_user("u2", "card-1")
            with pytest.raises(Conflict) as taken:
                await binder.bind("card-1", PaymentMethodIn.model_validate(card("u2")))
            with pytest.raises(InvalidInput) as pan:
                await binder.bind(
                    "card-2", PaymentMethodIn.model_validate(card(token="4242424242424242"))
                )
        finally:
            await ctx.http.close()
            await binder._session.close()

    assert bound == again
    assert bound.mask == "•••• 4242"
    assert listed == [bound]
    assert got.token == "tok_visa_ok"
    assert got.user_id == "u1"
    assert not_found.value.code == "payment_method_not_found"
    assert taken.value.code == "payment_method_taken"
    assert pan.value.code == "card_number_not_allowed"
