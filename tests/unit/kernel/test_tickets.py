"""Service tickets (kernel.tickets): signing and verifying with an injected clock."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from qrpay.kernel.tickets import (
    MAX_SKEW_SECONDS,
    REFRESH_SECONDS,
    TTL_SECONDS,
    TicketInvalid,
    TicketRefusal,
    TicketSigner,
    TicketVerifier,
    key_id,
    sign,
    verify,
)

OLD = b"old-ticket-key-0123456789abcdef-0123"
NEW = b"new-ticket-key-0123456789abcdef-4567"
NOW = 1_790_000_000


def ring(*keys: bytes) -> dict[str, bytes]:
    return {key_id(key): key for key in keys}


def refusal(ticket: str, keys: dict[str, bytes], now: int = NOW) -> TicketRefusal:
    with pytest.raises(TicketInvalid) as caught:
        verify(ticket, keys, now)
    return caught.value.reason


def test_a_signed_ticket_names_its_service_until_it_expires() -> None:
    ticket = sign("payments-eda", OLD, NOW)
    claims = verify(ticket, ring(OLD), NOW + TTL_SECONDS - 1)
    assert (claims.source, claims.issued_at, claims.expires_at) == (
        "payments-eda",
        NOW,
        NOW + TTL_SECONDS,
    )
    assert refusal(ticket, ring(OLD), NOW + TTL_SECONDS) is TicketRefusal.EXPIRED


def test_another_name_or_time_breaks_the_signature() -> None:
    ticket = sign("iiko-integration", OLD, NOW)
    forged = ticket.replace("iiko-integration", "payments-eda", 1)
    assert refusal(forged, ring(OLD)) is TicketRefusal.BAD_SIGNATURE
    longer = ticket.replace(f".{NOW + TTL_SECONDS}.", f".{NOW + TTL_SECONDS + 60}.", 1)
    assert refusal(longer, ring(OLD)) is TicketRefusal.BAD_SIGNATURE


def test_a_key_nobody_holds_is_unknown() -> None:
    ticket = sign("payments-eda", b"an-attackers-key-0123456789abcdef-00", NOW)
    assert refusal(ticket, ring(OLD, NEW)) is TicketRefusal.UNKNOWN_KEY


@pytest.mark.parametrize(
    "ticket", ["", "payments-eda", "a.b.c.d.e", "Payments.1.2.abcdef01." + "0" * 64, "x" * 5000]
)
def test_malformed_tickets_are_refused(ticket: str) -> None:
    assert refusal(ticket, ring(OLD)) is TicketRefusal.MALFORMED


def test_a_ticket_from_the_future_or_too_long_lived_is_refused() -> None:
    future = sign("payments-eda", OLD, NOW + MAX_SKEW_SECONDS + 1)
    assert refusal(future, ring(OLD)) is TicketRefusal.NOT_YET_VALID
    # Within the skew it is taken: the hosts' clocks differ a little.
    assert verify(sign("payments-eda", OLD, NOW + MAX_SKEW_SECONDS), ring(OLD), NOW)
    forever = sign("payments-eda", OLD, NOW, ttl=10 * 24 * 3600)
    assert refusal(forever, ring(OLD)) is TicketRefusal.NOT_YET_VALID


def test_rotation_the_first_key_signs_every_key_verifies() -> None:
    now = [float(NOW)]
    keys = [SecretStr(OLD.decode())]
    signer = TicketSigner("payments-eda", lambda: tuple(keys), lambda: now[0])
    old_ticket = signer.ticket()
    # The new key goes first: new tickets are signed with it, old ones still verify.
    keys[:] = [SecretStr(NEW.decode()), SecretStr(OLD.decode())]
    new_ticket = signer.ticket()
    assert new_ticket != old_ticket
    assert new_ticket.split(".")[3] == key_id(NEW)
    both = ring(NEW, OLD)
    assert verify(old_ticket, both, NOW).source == "payments-eda"
    assert verify(new_ticket, both, NOW).source == "payments-eda"
    # The old key dropped: its tickets stop working.
    assert refusal(old_ticket, ring(NEW)) is TicketRefusal.UNKNOWN_KEY


def test_the_signer_reuses_its_ticket_and_re_signs_before_expiry() -> None:
    now = [float(NOW)]
    keys = (SecretStr(OLD.decode()),)
    signer = TicketSigner("cashback", lambda: keys, lambda: now[0])
    first = signer.ticket()
    now[0] += TTL_SECONDS - REFRESH_SECONDS - 1
    assert signer.ticket() is first
    now[0] += 1
    second = signer.ticket()
    assert second != first
    assert verify(second, ring(OLD), int(now[0])).expires_at == int(now[0]) + TTL_SECONDS


def test_the_verifier_caches_a_ticket_until_it_expires_or_its_key_goes() -> None:
    now = [float(NOW)]
    keys: list[tuple[SecretStr, ...]] = [(SecretStr(OLD.decode()),)]
    verifier = TicketVerifier(lambda: keys[0], lambda: now[0])
    ticket = sign("payments-eda", OLD, NOW)
    assert verifier.verify(ticket).source == "payments-eda"
    assert verifier.verify(ticket).source == "payments-eda"
    now[0] = NOW + TTL_SECONDS
    with pytest.raises(TicketInvalid) as expired:
        verifier.verify(ticket)
    assert expired.value.reason is TicketRefusal.EXPIRED

    now[0] = NOW
    assert verifier.verify(ticket)
    keys[0] = (SecretStr(NEW.decode()),)  # a reload dropped the key
    with pytest.raises(TicketInvalid) as dropped:
        verifier.verify(ticket)
    assert dropped.value.reason is TicketRefusal.UNKNOWN_KEY


def test_no_ticket_is_missing() -> None:
    verifier = TicketVerifier(lambda: (SecretStr(OLD.decode()),), lambda: float(NOW))
    for absent in (None, ""):
        with pytest.raises(TicketInvalid) as caught:
            verifier.verify(absent)
        assert caught.value.reason is TicketRefusal.MISSING
