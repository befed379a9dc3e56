"""Tickets per source, for one destination (issue 20), at cardstorage: the service whose
card tokens a forged payments-eda ticket would read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from qrpay.kernel.config import Secdist
from qrpay.kernel.tickets import (
    MAX_SKEW_SECONDS,
    TTL_SECONDS,
    key_id,
    new_private_key,
    public_half,
)
from tests.support.component.cardstorage import TOKEN_ROUTE, card, token_call
from tests.support.services import dev_secdist, make_context, running_service
from tests.support.tickets import GuardedCall, dev_private_key, dev_ticket_keys, refusals, signed

ROUTE = TOKEN_ROUTE


@pytest.fixture
async def tokens(tmp_path: Path) -> AsyncIterator[GuardedCall]:
    ctx = make_context("cardstorage", tmp_path)
    async with running_service(ctx) as (_, client):
        assert (await client.put("/v1/payment-methods/card-1", json=card())).status_code == 200
        yield token_call(client)


async def refused(call: GuardedCall, ticket: str, reason: str) -> None:
    before = await refusals(call.client, ROUTE, "unknown", reason)
    answer = await call.send(ticket)
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "service_ticket_invalid"
    assert "tok_" not in answer.text
    assert await refusals(call.client, ROUTE, "unknown", reason) == before + 1


async def test_payments_eda_ticket_for_cardstorage_reads_the_token(tokens: GuardedCall) -> None:
    answer = await tokens.send(signed("payments-eda", "cardstorage"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token"] == "tok_visa_ok"


async def test_a_ticket_for_cashback_is_refused_by_cardstorage(tokens: GuardedCall) -> None:
    # What payments-eda sends to cashback, replayed by anything that saw it.
    await refused(tokens, signed("payments-eda", "cashback"), "wrong_destination")


async def test_api_proxys_key_cannot_sign_as_payments_eda(tokens: GuardedCall) -> None:
    # What a compromised api-proxy holds: its own private key, and nobody else's.
    forged = signed("payments-eda", "cardstorage", key=dev_private_key("api-proxy"))
    await refused(tokens, forged, "unknown_key")


async def test_an_expired_ticket_is_refused(tokens: GuardedCall) -> None:
    await refused(tokens, signed("payments-eda", "cardstorage", age=TTL_SECONDS), "expired")


async def test_a_ticket_not_yet_valid_is_refused(tokens: GuardedCall) -> None:
    early = signed("payments-eda", "cardstorage", age=-2 * MAX_SKEW_SECONDS)
    await refused(tokens, early, "not_yet_valid")
    # Within the skew it is taken: the caller's clock may run a little ahead.
    ahead = signed("payments-eda", "cardstorage", age=-MAX_SKEW_SECONDS // 2)
    assert (await tokens.send(ahead)).status_code == 200


def rotated(private: dict[str, list[str]], public: dict[str, list[str]]) -> Secdist:
    """The development secdist with some services' ticket keys replaced."""
    keys = dev_ticket_keys()
    mine = {name: [k.get_secret_value() for k in values] for name, values in keys.private.items()}
    theirs = {name: list(values) for name, values in keys.public.items()}
    return dev_secdist(ticket_keys={"private": mine | private, "public": theirs | public})


async def test_rotation_by_key_id(tmp_path: Path) -> None:
    old = dev_private_key("payments-eda")
    new = new_private_key()
    # 1. cardstorage learns payments-eda's new public key beside the old one.
    both = [public_half(new), public_half(old)]
    ctx = make_context("cardstorage", tmp_path, secdist=rotated({}, {"payments-eda": both}))
    # 2. payments-eda signs with the new key once it is first among its own.
    payer = make_context(
        "payments-eda", tmp_path, secdist=rotated({"payments-eda": [new, old]}, {})
    )
    ticket = payer.tickets.ticket("cardstorage")
    assert ticket.split(".")[4] == key_id(public_half(new))
    async with running_service(ctx) as (_, client):
        assert (await client.put("/v1/payment-methods/card-1", json=card())).status_code == 200
        call = token_call(client)
        for sent in (ticket, signed("payments-eda", "cardstorage", key=old)):
            answer = await call.send(sent)
            assert answer.status_code == 200, answer.text
    # 3. The old public key dropped once its tickets have expired: they stop at once.
    secdist = rotated({}, {"payments-eda": [public_half(new)]})
    ctx = make_context("cardstorage", tmp_path, secdist=secdist)
    async with running_service(ctx, migrate=False) as (_, client):
        call = replace(call, client=client)
        assert (await call.send(ticket)).status_code == 200
        stale = await call.send(signed("payments-eda", "cardstorage", key=old))
        assert stale.status_code == 401
        assert stale.json()["code"] == "service_ticket_invalid"
