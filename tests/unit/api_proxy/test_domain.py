"""api-proxy's rules: the session cookie, safe redirects, the guest's language, forwarded routes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from qrpay.api_proxy.domain import (
    DEFAULT_NEXT,
    SESSION_TTL,
    PayCall,
    Session,
    choose_language,
    new_session,
    pay_forward_timeout_ms,
    pay_route,
    payer_route,
    safe_next,
    sign_session,
    unknown_outcome_message,
    verify_session,
)

SECRET = "unit-test-session-secret"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def token_for(user: str = "demo-user", phone: str = "phone-1") -> str:
    return sign_session(SECRET, new_session(user, phone, NOW))


def test_a_signed_session_verifies() -> None:
    session = verify_session([SECRET], token_for(), NOW)
    issued, expires = int(NOW.timestamp()), int((NOW + SESSION_TTL).timestamp())
    assert session == Session("demo-user", "phone-1", issued, expires)


def test_the_session_lasts_about_a_week() -> None:
    token = token_for()
    assert verify_session([SECRET], token, NOW + timedelta(days=7) - timedelta(seconds=1))
    assert verify_session([SECRET], token, NOW + timedelta(days=7)) is None
    assert verify_session([SECRET], token, NOW + timedelta(days=30)) is None


def test_another_secret_does_not_verify() -> None:
    assert verify_session(["another-secret"], token_for(), NOW) is None


def _swap_payload(token: str, raw: str) -> str:
    payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{payload}.{token.split('.')[1]}"


def test_a_changed_user_breaks_the_signature() -> None:
    token = token_for()
    issued, expires = int(NOW.timestamp()), int((NOW + SESSION_TTL).timestamp())
    forged = _swap_payload(token, f"admin|phone-1|{issued}|{expires}")
    assert verify_session([SECRET], forged, NOW) is None


def test_a_longer_expiry_breaks_the_signature() -> None:
    token = token_for()
    later = int((NOW + timedelta(days=365)).timestamp())
    forged = _swap_payload(token, f"demo-user|phone-1|{int(NOW.timestamp())}|{later}")
    assert verify_session([SECRET], forged, NOW + timedelta(days=8)) is None


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "no-dot",
        "a.b.c",
        ".",
        "x" * 2000 + ".00",
        "%%%%.abcd",
    ],
)
def test_malformed_tokens_are_no_session(token: str | None) -> None:
    assert verify_session([SECRET], token, NOW) is None


def test_a_flipped_signature_character_is_refused() -> None:
    token = token_for()
    last = token[-1]
    flipped = token[:-1] + ("0" if last != "0" else "1")
    assert verify_session([SECRET], flipped, NOW) is None


def test_a_well_signed_payload_with_bad_fields_is_refused() -> None:
    # Even with the right key, the payload must be user|phone|issued|expires with safe ids.
    from qrpay.api_proxy.domain import _signature

    for raw in (
        "demo-user|phone-1|9999999999",
        "demo user|phone-1|1|9999999999",
        "a|b|1|soon",
        "a|b|now|9999999999",
    ):
        payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        assert verify_session([SECRET], f"{payload}.{_signature(SECRET, payload)}", NOW) is None


@pytest.mark.parametrize("user", ["", "a|b", "with space", "x" * 129, "кириллица", "demo-user\n"])
def test_unsafe_user_ids_make_no_session(user: str) -> None:
    with pytest.raises(ValueError, match="ids"):
        new_session(user, "phone-1", NOW)


@pytest.mark.parametrize(
    "value",
    [
        "/go-pay/orders?order_id=ord-1&hmac=abc",
        "/go-pay/restaurants",
        "/login?next=%2Fgo-pay%2Forders",
        "/",
    ],
)
def test_same_site_paths_are_kept(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "go-pay/orders",
        "/go-pay/orders\n/evil",
        "/ /evil",
        "/\t/evil.example",
        "http:/evil.example",
        "/" + "a" * 3000,
    ],
)
def test_anything_else_falls_back_to_the_default(value: str | None) -> None:
    assert safe_next(value) == DEFAULT_NEXT
    assert safe_next(value, default="/login") == "/login"


@pytest.mark.parametrize(
    ("request_language", "accept_language", "expected"),
    [
        ("en", "ru-RU,ru;q=0.9", "en"),
        ("ru", "en-US", "ru"),
        ("EN-gb", None, "en"),
        ("de", "en-US,en;q=0.9", "en"),
        (None, "ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
        (None, "de-DE,en;q=0.5,ru;q=0.7", "ru"),
        (None, "en;q=0.8,ru;q=0.8", "en"),
        (None, "fr-FR,de;q=0.9", None),
        (None, "ru;q=0,en;q=0.1", "en"),
        (None, "ru;q=abc,en", "en"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_language_choice(
    request_language: str | None, accept_language: str | None, expected: str | None
) -> None:
    assert choose_language(request_language, accept_language) == expected


def test_only_the_payer_routes_are_forwarded() -> None:
    assert payer_route("GET", "preorder") is False
    assert payer_route("GET", "orders") is False
    assert payer_route("post", "orders/") is True
    assert payer_route("POST", "preorder") is None
    assert payer_route("GET", "callbacks") is None
    assert payer_route("DELETE", "orders") is None
    # A split bill: paying a share needs a session, reading it does not.
    assert payer_route("POST", "orders/share") is True
    assert payer_route("GET", "orders/split") is False
    assert payer_route("GET", "orders/share/quote") is False
    assert payer_route("POST", "orders/split") is None


def test_a_revoked_user_s_older_sessions_are_refused() -> None:
    session = new_session("demo-user", "phone-1", NOW)
    assert not session.is_revoked({})
    assert not session.is_revoked({"guest-2": NOW + timedelta(days=1)})
    assert session.is_revoked({"demo-user": NOW + timedelta(seconds=1)})
    # Signed in at (or after) the moment of revocation: a new session, valid.
    assert not session.is_revoked({"demo-user": NOW})


def test_api_proxy_waits_payments_edas_whole_pay_budget_and_more() -> None:
    for budget in (100, 6000, 60_000):
        assert pay_forward_timeout_ms(budget) > budget


def test_the_pay_routes_and_which_needs_a_token() -> None:
    assert pay_route("orders") is False
    assert pay_route("/orders/share/") is True
    assert pay_route("orders/share/quote") is None
    assert pay_route("preorder") is None


def test_a_lost_pay_names_the_payment_its_token_makes() -> None:
    from qrpay.payments_eda.schemas import payment_id_for

    share = PayCall(order_id="ord-1", token="tap-12345678", share=True)
    assert share.payment_id == payment_id_for("ord-1", "tap-12345678")
    assert PayCall(order_id="ord-1", token=None, share=False).payment_id is None
    assert unknown_outcome_message("en") == "The payment is being processed"
    assert unknown_outcome_message("de") == unknown_outcome_message("ru")
