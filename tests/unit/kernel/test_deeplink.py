from urllib.parse import parse_qs, urlsplit

from qrpay.kernel.deeplink import build_link, sign, verify


def test_sign_matches_the_spec_formula() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 16, b"order-1:rest-1", hashlib.sha256).hexdigest()
    assert sign("k" * 16, "order-1", "rest-1") == expected


def test_rotation_first_key_signs_all_verify() -> None:
    old, new = "old-key-0123456789", "new-key-0123456789"
    signature = sign(old, "o1", "rest-1")
    assert verify([new, old], "o1", "rest-1", signature)
    assert not verify([new], "o1", "rest-1", signature)


def test_signature_binds_order_and_restaurant() -> None:
    signature = sign("k" * 16, "o1", "rest-1")
    assert not verify(["k" * 16], "o2", "rest-1", signature)
    assert not verify(["k" * 16], "o1", "rest-2", signature)
    assert not verify(["k" * 16], "o1", "rest-1", "")
    assert not verify(
        ["k" * 16],
        "o1",
        "rest-1",
        signature[:-1] + "0" if signature[-1] != "0" else signature[:-1] + "1",
    )


def test_a_signature_that_is_not_ascii_is_wrong_not_an_error() -> None:
    # 64 characters, as many as a real one: compare_digest would raise TypeError on them.
    assert not verify(["k" * 16], "o1", "rest-1", "é" * 64)
    assert not verify(["k" * 16], "o1", "rest-1", sign("k" * 16, "o1", "rest-1")[:-1] + "é")


def test_link_carries_order_and_hmac() -> None:
    link = build_link("https://x.test/go-pay/orders", "o1", "ab" * 32)
    query = parse_qs(urlsplit(link).query)
    assert query == {"order_id": ["o1"], "hmac": ["ab" * 32]}
    assert build_link("https://x.test/p?a=1", "o1", "cd").startswith(
        "https://x.test/p?a=1&order_id=o1"
    )
