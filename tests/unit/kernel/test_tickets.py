"""Service tickets (kernel.tickets): signing and verifying with an injected clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from pydantic import SecretStr

from qrpay.kernel.tickets import (
    MAX_SKEW_SECONDS,
    REFRESH_SECONDS,
    TTL_SECONDS,
    PublicKeys,
    TicketInvalid,
    TicketRefusal,
    TicketSigner,
    TicketVerifier,
    key_id,
    new_private_key,
    public_half,
    public_key,
    sign,
    verify,
)

PAYER = new_private_key()  # payments-eda's
PAYER_NEW = new_private_key()
PROXY = new_private_key()  # api-proxy's
NOW = 1_790_000_000


def ring(keys: Mapping[str, Sequence[str]]) -> PublicKeys:
    """Public keys by source and key id, from private keys by source."""
    return {
        source: {key_id(public_half(k)): public_key(public_half(k)) for k in privates}
        for source, privates in keys.items()
    }


CALLERS = ring({"payments-eda": [PAYER], "api-proxy": [PROXY]})


def refusal(
    ticket: str, keys: PublicKeys = CALLERS, now: int = NOW, at: str = "cardstorage"
) -> TicketRefusal:
    with pytest.raises(TicketInvalid) as caught:
        verify(ticket, at, keys, now)
    return caught.value.reason


def test_a_signed_ticket_names_its_source_and_destination_until_it_expires() -> None:
    ticket = sign("payments-eda", "cardstorage", PAYER, NOW)
    claims = verify(ticket, "cardstorage", CALLERS, NOW + TTL_SECONDS - 1)
    assert (claims.source, claims.destination, claims.issued_at, claims.expires_at) == (
        "payments-eda",
        "cardstorage",
        NOW,
        NOW + TTL_SECONDS,
    )
    assert refusal(ticket, now=NOW + TTL_SECONDS) is TicketRefusal.EXPIRED


def test_a_ticket_for_another_destination_is_refused() -> None:
    ticket = sign("payments-eda", "cashback", PAYER, NOW)
    assert verify(ticket, "cashback", CALLERS, NOW).destination == "cashback"
    assert refusal(ticket, at="cardstorage") is TicketRefusal.WRONG_DESTINATION


def test_one_services_key_cannot_sign_as_another() -> None:
    forged = sign("payments-eda", "cardstorage", PROXY, NOW)
    assert refusal(forged) is TicketRefusal.UNKNOWN_KEY
    # Nor by naming the other service over its own ticket: the key id is api-proxy's.
    own = sign("api-proxy", "cardstorage", PROXY, NOW)
    assert refusal(own.replace("api-proxy", "payments-eda", 1)) is TicketRefusal.UNKNOWN_KEY


def test_another_destination_or_time_breaks_the_signature() -> None:
    ticket = sign("payments-eda", "cashback", PAYER, NOW)
    moved = ticket.replace(".cashback.", ".cardstorage.", 1)
    assert refusal(moved) is TicketRefusal.BAD_SIGNATURE
    longer = ticket.replace(f".{NOW + TTL_SECONDS}.", f".{NOW + TTL_SECONDS + 60}.", 1)
    assert refusal(longer, at="cashback") is TicketRefusal.BAD_SIGNATURE


def test_a_key_nobody_holds_is_unknown() -> None:
    ticket = sign("payments-eda", "cardstorage", new_private_key(), NOW)
    assert refusal(ticket) is TicketRefusal.UNKNOWN_KEY
    assert refusal(sign("cashback", "cardstorage", PAYER, NOW)) is TicketRefusal.UNKNOWN_KEY


@pytest.mark.parametrize(
    "ticket",
    [
        "",
        "payments-eda",
        "a.b.c.d.e.f",
        "Payments.eda.1.2.abcdef01." + "A" * 86,
        "payments-eda.eda.1.2.abcdef01." + "A" * 85,
        "x" * 5000,
    ],
)
def test_malformed_tickets_are_refused(ticket: str) -> None:
    assert refusal(ticket) is TicketRefusal.MALFORMED


def test_a_ticket_from_the_future_or_too_long_lived_is_refused() -> None:
    future = sign("payments-eda", "cardstorage", PAYER, NOW + MAX_SKEW_SECONDS + 1)
    assert refusal(future) is TicketRefusal.NOT_YET_VALID
    # Within the skew it is taken: the hosts' clocks differ a little.
    near = sign("payments-eda", "cardstorage", PAYER, NOW + MAX_SKEW_SECONDS)
    assert verify(near, "cardstorage", CALLERS, NOW)
    forever = sign("payments-eda", "cardstorage", PAYER, NOW, ttl=10 * 24 * 3600)
    assert refusal(forever) is TicketRefusal.NOT_YET_VALID


def test_rotation_the_first_key_signs_every_listed_public_key_verifies() -> None:
    now = [float(NOW)]
    keys = [SecretStr(PAYER)]
    signer = TicketSigner("payments-eda", lambda: tuple(keys), lambda: now[0])
    old_ticket = signer.ticket("cardstorage")
    # The new key goes first: new tickets are signed with it, old ones still verify.
    keys[:] = [SecretStr(PAYER_NEW), SecretStr(PAYER)]
    new_ticket = signer.ticket("cardstorage")
    assert new_ticket != old_ticket
    assert new_ticket.split(".")[4] == key_id(public_half(PAYER_NEW))
    both = ring({"payments-eda": [PAYER_NEW, PAYER]})
    assert verify(old_ticket, "cardstorage", both, NOW).source == "payments-eda"
    assert verify(new_ticket, "cardstorage", both, NOW).source == "payments-eda"
    # The old key dropped: its tickets stop working.
    only_new = ring({"payments-eda": [PAYER_NEW]})
    assert refusal(old_ticket, only_new) is TicketRefusal.UNKNOWN_KEY


def test_the_signer_keeps_one_ticket_per_destination_and_re_signs_before_expiry() -> None:
    now = [float(NOW)]
    keys = (SecretStr(PAYER),)
    signer = TicketSigner("payments-eda", lambda: keys, lambda: now[0])
    first = signer.ticket("cashback")
    other = signer.ticket("cardstorage")
    assert verify(other, "cardstorage", CALLERS, NOW).destination == "cardstorage"
    now[0] += TTL_SECONDS - REFRESH_SECONDS - 1
    assert signer.ticket("cashback") is first
    assert signer.ticket("cardstorage") is other
    now[0] += 1
    second = signer.ticket("cashback")
    assert second != first
    claims = verify(second, "cashback", CALLERS, int(now[0]))
    assert claims.expires_at == int(now[0]) + TTL_SECONDS


def test_a_signer_without_a_key_refuses_to_sign() -> None:
    signer = TicketSigner("eda", lambda: (), lambda: float(NOW))
    with pytest.raises(TicketInvalid):
        signer.ticket("cardstorage")


def test_the_verifier_caches_a_ticket_until_it_expires_or_its_key_goes() -> None:
    now = [float(NOW)]
    keys: list[dict[str, tuple[str, ...]]] = [{"payments-eda": (public_half(PAYER),)}]
    verifier = TicketVerifier("cardstorage", lambda: keys[0], lambda: now[0])
    ticket = sign("payments-eda", "cardstorage", PAYER, NOW)
    assert verifier.verify(ticket).source == "payments-eda"
    assert verifier.verify(ticket).source == "payments-eda"
    now[0] = NOW + TTL_SECONDS
    with pytest.raises(TicketInvalid) as expired:
        verifier.verify(ticket)
    assert expired.value.reason is TicketRefusal.EXPIRED

    now[0] = NOW
    assert verifier.verify(ticket)
    keys[0] = {"payments-eda": (public_half(PAYER_NEW),)}  # a reload dropped the key
    with pytest.raises(TicketInvalid) as dropped:
        verifier.verify(ticket)
    assert dropped.value.reason is TicketRefusal.UNKNOWN_KEY


def test_the_verifier_refuses_a_ticket_for_another_service_even_after_a_hit() -> None:
    callers = {"payments-eda": (public_half(PAYER),)}
    at_cashback = TicketVerifier("cashback", lambda: callers, lambda: float(NOW))
    at_cardstorage = TicketVerifier("cardstorage", lambda: callers, lambda: float(NOW))
    ticket = sign("payments-eda", "cashback", PAYER, NOW)
    assert at_cashback.verify(ticket).destination == "cashback"
    with pytest.raises(TicketInvalid) as caught:
        at_cardstorage.verify(ticket)
    assert caught.value.reason is TicketRefusal.WRONG_DESTINATION


def test_no_ticket_is_missing() -> None:
    verifier = TicketVerifier("eda", lambda: {}, lambda: float(NOW))
    for absent in (None, ""):
        with pytest.raises(TicketInvalid) as caught:
            verifier.verify(absent)
        assert caught.value.reason is TicketRefusal.MISSING
