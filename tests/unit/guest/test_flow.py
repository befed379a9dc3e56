"""The guest against a fake payments-eda: what it sends, what it shows, how it exits."""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.console import Console

from qrpay_tools.guest.api import Card
from qrpay_tools.guest.errors import EXIT_ERROR, EXIT_NOT_PAYED, EXIT_PAYED, GuestError
from qrpay_tools.guest.flow import GuestOptions, run_guest
from tests.unit.guest.fake import HMAC, LINK, ORDER_ID, FakePayments, preorder_body, serving


def console() -> Console:
    return Console(file=io.StringIO(), record=True, width=120, force_terminal=False)


class Chooser:
    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.offered: list[tuple[str, ...]] = []

    def __call__(self, cards: tuple[Card, ...]) -> str | None:
        self.offered.append(tuple(card.id for card in cards))
        return self.answers.pop(0)


def never(_cards: tuple[Card, ...]) -> str | None:
    raise AssertionError("the guest must not be asked when --card is given")


async def guest(fake: FakePayments, choose: object = never, **options: object) -> tuple[int, str]:
    out = console()
    async with serving(fake) as url:
        code = await run_guest(
            GuestOptions(link=LINK, api_url=url, cashback_url=url, **options),  # type: ignore[arg-type]
            out,
            choose,  # type: ignore[arg-type]
        )
    return code, out.export_text()


async def test_pays_with_the_given_card_and_follows_until_payed() -> None:
    fake = FakePayments()
    code, text = await guest(fake, card_id="card-ok", user_id="u-42", language="ru")
    assert code == EXIT_PAYED
    assert f"order {ORDER_ID}: PAYED 1100.00 RUB — Cashback will arrive soon" in text
    assert "Cashback balance: 330 RUB" in text

    [(headers, body)] = fake.calls("POST", "/4.0/payments/v1/orders")
    assert body == {
        "service": "restaurant",
        "order_id": ORDER_ID,
        "hmac": HMAC,
        "payment_method": {"type": "card", "id": "card-ok"},
        "amount": "1100.00",
        "currency": "RUB",
        "bill_version": 1,
    }
    assert headers["X-Yandex-UID"] == "u-42"
    assert headers["X-Request-Language"] == "ru"
    [(_, query)] = fake.calls("GET", "/4.0/payments/v1/preorder")
    assert query == {"service": "restaurant", "order_id": ORDER_ID, "hmac": HMAC}
    polls = fake.calls("GET", "/4.0/payments/v1/orders")
    assert len(polls) == 3
    # Long-polls, as the payer page asks.
    assert all(q == {"order_id": ORDER_ID, "hmac": HMAC, "wait_ms": "20000"} for _, q in polls)
    assert len(fake.calls("GET", "/v1/users/u-42/balance")) == 1


async def test_polling_waits_as_long_as_the_service_says() -> None:
    fake = FakePayments(polling_delay="0.2")
    started = time.monotonic()
    code, _ = await guest(fake, card_id="card-ok")
    assert code == EXIT_PAYED
    # Three long-polls this server answered at once: the first right after the pay, each
    # other one after the delay the previous answer asked for.
    assert time.monotonic() - started >= 0.4


async def test_declined_with_the_given_card_exits_1_without_asking() -> None:
    fake = FakePayments()
    code, text = await guest(fake, card_id="card-declined")
    assert code == EXIT_NOT_PAYED
    assert "DECLINED — Insufficient funds" in text
    assert "Cashback balance" not in text
    assert fake.calls("GET", "/v1/users/demo-user/balance") == []


async def test_interactive_guest_tries_another_card_after_a_decline() -> None:
    fake = FakePayments()
    chooser = Chooser("card-declined", "card-ok")
    code, text = await guest(fake, chooser)
    assert code == EXIT_PAYED
    # The unavailable card is never offered.
    assert chooser.offered == [("card-ok", "card-declined")] * 2
    paid_with = [
        b["payment_method"]["id"] for _, b in fake.calls("POST", "/4.0/payments/v1/orders")
    ]
    assert paid_with == ["card-declined", "card-ok"]
    assert "DECLINED" in text
    assert "PAYED" in text


async def test_interactive_guest_may_give_up() -> None:
    code, text = await guest(FakePayments(), Chooser(None))
    assert code == EXIT_NOT_PAYED
    assert "not paid" in text


@pytest.mark.parametrize(
    ("card", "fragment"),
    [("card-nope", "not one of your cards"), ("card-expired", "not available")],
)
async def test_a_card_that_cannot_pay_is_an_error_before_paying(card: str, fragment: str) -> None:
    fake = FakePayments()
    with pytest.raises(GuestError, match=fragment) as caught:
        await guest(fake, card_id=card)
    assert caught.value.exit_code == EXIT_ERROR
    assert fake.calls("POST", "/4.0/payments/v1/orders") == []


async def test_a_wrong_link_is_not_found() -> None:
    fake = FakePayments(
        preorder_error=(404, {"code": "order_not_found", "message": "Order not found"})
    )
    with pytest.raises(GuestError, match="404") as caught:
        await guest(fake, card_id="card-ok")
    assert caught.value.exit_code == EXIT_ERROR
    assert "link" in caught.value.message


@pytest.mark.parametrize("code", ["order_closed", "already_paid", "bill_changed"])
async def test_closed_paid_or_changed_orders_exit_1(code: str) -> None:
    fake = FakePayments(pay_error=(409, {"code": code, "message": "no"}))
    with pytest.raises(GuestError, match=code) as caught:
        await guest(fake, card_id="card-ok")
    assert caught.value.exit_code == EXIT_NOT_PAYED


async def test_other_answers_are_errors() -> None:
    fake = FakePayments(pay_error=(400, {"code": "invalid_input", "message": "bad amount"}))
    with pytest.raises(GuestError, match="400 \\(invalid_input: bad amount\\)") as caught:
        await guest(fake, card_id="card-ok")
    assert caught.value.exit_code == EXIT_ERROR


async def test_a_short_outage_while_polling_is_ridden_out() -> None:
    fake = FakePayments(status_outages=3)
    code, _ = await guest(fake, card_id="card-ok")
    assert code == EXIT_PAYED


async def test_a_long_outage_while_polling_is_an_error() -> None:
    fake = FakePayments(status_outages=100)
    with pytest.raises(GuestError, match="503") as caught:
        await guest(fake, card_id="card-ok")
    assert caught.value.exit_code == EXIT_ERROR


async def test_no_final_status_in_time_is_an_error() -> None:
    fake = FakePayments(scripts={"card-ok": ["WAITING"] * 1000}, polling_delay="0.05")
    with pytest.raises(GuestError, match=r"no final status after 0\.3s") as caught:
        await guest(fake, card_id="card-ok", timeout_seconds=0.3)
    assert caught.value.exit_code == EXIT_ERROR


async def test_a_balance_failure_does_not_undo_the_payment() -> None:
    fake = FakePayments(balance=None)
    code, text = await guest(fake, card_id="card-ok")
    assert code == EXIT_PAYED
    assert "cashback balance unavailable" in text


async def test_payments_eda_down_is_one_line() -> None:
    from tests.support.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GuestError) as caught:
        await run_guest(GuestOptions(link=LINK, api_url=url, card_id="card-ok"), console(), never)
    assert caught.value.message == (
        f"cannot reach payments-eda at {url} (connection refused) — is `qrpay up` running?"
    )


@pytest.mark.parametrize(
    ("status", "fragment"), [("PAYED", "already paid"), ("CANCELED", "closed")]
)
async def test_a_paid_or_closed_order_is_not_paid_again(status: str, fragment: str) -> None:
    fake = FakePayments(preorder=preorder_body(status=status))
    code, text = await guest(fake, card_id="card-ok")
    assert code == EXIT_NOT_PAYED
    assert fragment in text
    assert fake.calls("POST", "/4.0/payments/v1/orders") == []


TOKEN = re.compile(r"[A-Za-z0-9_-]{8,128}")
PAYS = "/4.0/payments/v1/orders"


async def test_a_pay_carries_the_runs_token_and_is_sent_again_with_it_while_unanswered() -> None:
    fake = FakePayments(pay_outages=2)
    code, _ = await guest(fake, card_id="card-ok")
    assert code == EXIT_PAYED
    tokens = [headers["X-Idempotency-Token"] for headers, _ in fake.calls("POST", PAYS)]
    assert len(tokens) == 3
    assert TOKEN.fullmatch(tokens[0])
    assert set(tokens) == {tokens[0]}  # the same payment each time


async def test_a_pay_unanswered_every_time_is_an_error_after_its_tries() -> None:
    fake = FakePayments(pay_outages=100)
    with pytest.raises(GuestError, match="503") as caught:
        await guest(fake, card_id="card-ok")
    assert caught.value.exit_code == EXIT_ERROR
    assert len(fake.calls("POST", PAYS)) == 3


async def test_another_card_after_a_decline_is_a_new_token() -> None:
    fake = FakePayments()
    code, _ = await guest(fake, Chooser("card-declined", "card-ok"))
    assert code == EXIT_PAYED
    declined, paid = (headers["X-Idempotency-Token"] for headers, _ in fake.calls("POST", PAYS))
    assert declined != paid
