from __future__ import annotations

import hmac

import pytest

from qrpay.iiko_integration import auth
from qrpay.iiko_integration.auth import ApiKeyAuth, authorize
from qrpay.kernel.config import Secdist
from qrpay.kernel.errors import Forbidden, Unauthenticated
from tests.support.services import dev_secdist

KEY_1 = "key-one-0123456789abcdef"
KEY_2 = "key-two-0123456789abcdef"


def secdist() -> Secdist:
    return dev_secdist(
        api_keys=[
            {"key": KEY_1, "client_ids": ["rest-1"]},
            {"key": KEY_2, "client_ids": ["rest-2", "rest-3"]},
        ]
    )


def make_auth() -> ApiKeyAuth:
    value = secdist()
    return ApiKeyAuth(lambda: value)


def test_each_key_maps_to_its_restaurants() -> None:
    checker = make_auth()
    assert checker.authenticate(KEY_1) == frozenset({"rest-1"})
    assert checker.authenticate(KEY_2) == frozenset({"rest-2", "rest-3"})


@pytest.mark.parametrize(
    "presented", [None, "", KEY_1[:-1], KEY_1 + "x", KEY_1.upper(), "ключ-не-ascii"]
)
def test_missing_or_unknown_key_is_unauthorized(presented: str | None) -> None:
    with pytest.raises(Unauthenticated) as error:
        make_auth().authenticate(presented)
    assert error.value.code == "unauthorized"


def test_every_key_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(auth, "compare_digest", counting)
    make_auth().authenticate(KEY_1)  # KEY_1 is the first key
    assert len(calls) == 2


def test_authorize_checks_client_id() -> None:
    authorize(frozenset({"rest-1"}), "rest-1")
    with pytest.raises(Forbidden) as error:
        authorize(frozenset({"rest-1"}), "rest-2")
    assert error.value.code == "forbidden_client"


def test_new_secdist_is_picked_up() -> None:
    holder = {"value": dev_secdist()}
    checker = ApiKeyAuth(lambda: holder["value"])
    with pytest.raises(Unauthenticated):
        checker.authenticate(KEY_1)
    holder["value"] = secdist()
    assert checker.authenticate(KEY_1) == frozenset({"rest-1"})
