"""A service-ticket key rotation keeps every caller working (issue 11)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from qrpay.kernel.tickets import key_id, sign
from tests.support.component.cardstorage import card
from tests.support.services import dev_secdist, make_context, running_service
from tests.support.tickets import GuardedCall, dev_ticket_key

NEW = "a-freshly-generated-ticket-key-0123456789"


async def test_rotation_the_new_key_signs_and_the_old_one_still_verifies(
    tmp_path: Path,
) -> None:
    old = dev_ticket_key()
    secdist = dev_secdist(service_ticket_keys=[NEW, old.decode()])
    ctx = make_context("cardstorage", tmp_path, secdist=secdist)
    # This service's own calls are signed with the first key.
    assert ctx.tickets.ticket().split(".")[3] == key_id(NEW.encode())
    async with running_service(ctx) as (_, client):
        assert (await client.put("/v1/payment-methods/card-1", json=card())).status_code == 200
        call = GuardedCall(
            client,
            "GET",
            "/v1/payment-methods/card-1",
            "/v1/payment-methods/{method_id}",
            params={"user_id": "u1"},
        )
        now = int(time.time())
        for key in (old, NEW.encode()):
            answer = await call.send(sign("payments-eda", key, now))
            assert answer.status_code == 200, answer.text
    # Once every process signs with the new key, the old one is dropped: its tickets stop.
    ctx = make_context("cardstorage", tmp_path, secdist=dev_secdist(service_ticket_keys=[NEW]))
    async with running_service(ctx, migrate=False) as (_, client):
        answer = await replace(call, client=client).send(sign("payments-eda", old, now))
        assert answer.status_code == 401
        assert answer.json()["code"] == "service_ticket_invalid"
