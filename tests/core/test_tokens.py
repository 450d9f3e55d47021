"""Token crypto: 256-bit tokens, keyed digests per purpose, rotation, cheap junk rejection."""

import base64
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magiclink_core.domain import tokens
from magiclink_core.domain.tokens import (
    Keyring,
    TokenPurpose,
    new_numeric_code,
    new_token,
    new_token_and_code,
    new_token_and_id,
    numeric_code,
    parse_token,
)

KEY_A = b"a" * 32
KEY_B = b"b" * 32


def test_a_token_carries_256_random_bits() -> None:
    token = new_token(TokenPurpose.LINK)
    raw = parse_token(token, TokenPurpose.LINK)
    assert raw is not None and len(raw) == 32
    assert len({new_token(TokenPurpose.LINK) for _ in range(1000)}) == 1000


def _code_with_a_token(digits: int) -> str:
    return new_token_and_code(TokenPurpose.LINK, digits)[1]


@pytest.mark.parametrize("draw", [new_numeric_code, _code_with_a_token], ids=["alone", "with"])
@pytest.mark.parametrize("digits", [*range(4, 11), 20])  # 20: past 64 bits, randbelow
def test_a_numeric_code_has_its_digits_and_every_leading_digit_alike(
    draw: Callable[[int], str], digits: int
) -> None:
    codes = [draw(digits) for _ in range(5000)]
    assert all(len(code) == digits and code.isdigit() for code in codes)
    # 500 expected per leading digit: a skew toward low digits (a bias) would show
    assert all(380 <= n <= 620 for n in Counter(code[0] for code in codes).values())
    assert len(Counter(code[0] for code in codes)) == 10


def test_a_draw_past_the_last_whole_multiple_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2**64 - 1 lies past the last multiple of 10**6 below 2**64: taken, it would favour the
    # low codes; the draw after it (1,234,567) gives 234567
    draws = iter([(2**64 - 1).to_bytes(8), (1_234_567).to_bytes(8)])
    monkeypatch.setattr(tokens.os, "urandom", lambda n: next(draws))
    assert new_numeric_code(6) == "234567"


@given(st.binary(min_size=8, max_size=8), st.integers(4, 10))
def test_a_code_of_eight_random_bytes_is_their_value_unless_past_the_last_multiple(
    drawn: bytes, digits: int
) -> None:
    value, codes = int.from_bytes(drawn), 10**digits
    code = numeric_code(drawn, digits)
    if value >= 2**64 - 2**64 % codes:
        assert code is None  # taken, it would favour the low codes
    else:
        assert code == str(value % codes).zfill(digits)


def test_a_code_is_not_made_of_the_wrong_number_of_bytes_or_past_64_bits() -> None:
    assert numeric_code(bytes(7), 6) is None
    assert numeric_code(bytes(9), 6) is None
    assert numeric_code(bytes(8), 20) is None  # 10**20 codes: 64 bits cannot cover them evenly


def test_a_token_drawn_with_an_id_takes_each_from_its_own_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = bytes(range(48))
    calls: list[int] = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        return drawn[:n]

    monkeypatch.setattr(tokens.os, "urandom", urandom)
    token, record_id = new_token_and_id(TokenPurpose.SESSION, "sess")
    assert calls == [48]  # one system call for both
    assert parse_token(token, TokenPurpose.SESSION) == drawn[:32]
    assert record_id == "sess_" + drawn[32:].hex()


def test_tokens_and_ids_drawn_together_are_all_distinct() -> None:
    pairs = [new_token_and_id(TokenPurpose.CLIENT, "client") for _ in range(1000)]
    assert len({token for token, _ in pairs}) == len({i for _, i in pairs}) == 1000
    assert all(len(i) == len("client_") + 32 and i.startswith("client_") for _, i in pairs)


def test_a_token_drawn_with_a_code_takes_each_from_its_own_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = bytes(range(32)) + (1_234_567).to_bytes(8)
    calls: list[int] = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        return drawn[:n]

    monkeypatch.setattr(tokens.os, "urandom", urandom)
    token, code = new_token_and_code(TokenPurpose.LINK, 6)
    assert calls == [40]
    assert parse_token(token, TokenPurpose.LINK) == drawn[:32]
    assert code == "234567"


def test_a_code_drawn_with_a_token_past_the_last_multiple_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = iter([bytes(32) + (2**64 - 1).to_bytes(8), (7).to_bytes(8)])
    monkeypatch.setattr(tokens.os, "urandom", lambda n: next(draws))
    token, code = new_token_and_code(TokenPurpose.LINK, 6)
    assert parse_token(token, TokenPurpose.LINK) == bytes(32)
    assert code == "000007"


def test_a_token_of_one_purpose_is_refused_for_another() -> None:
    token = new_token(TokenPurpose.SESSION)
    assert parse_token(token, TokenPurpose.LINK) is None
    assert Keyring([KEY_A]).candidate_digests(token, TokenPurpose.LINK) == []


def test_digests_differ_by_purpose_and_key_and_hide_the_token() -> None:
    token = new_token(TokenPurpose.LINK)
    ring = Keyring([KEY_A])
    digest = ring.digest(token, TokenPurpose.LINK)
    assert token not in digest and len(digest) == 64
    assert digest != Keyring([KEY_B]).digest(token, TokenPurpose.LINK)
    assert Keyring([KEY_A]).digest(token, TokenPurpose.LINK) == digest


def test_rotation_signs_with_the_newest_and_verifies_with_all() -> None:
    token = new_token(TokenPurpose.SESSION)
    old_digest = Keyring([KEY_A]).digest(token, TokenPurpose.SESSION)
    rotated = Keyring([KEY_B, KEY_A])
    assert rotated.digest(token, TokenPurpose.SESSION) != old_digest
    assert old_digest in rotated.candidate_digests(token, TokenPurpose.SESSION)
    assert old_digest not in Keyring([KEY_B]).candidate_digests(token, TokenPurpose.SESSION)


def test_repr_shows_no_key_material() -> None:
    assert "a" * 8 not in repr(Keyring([KEY_A]))


@given(st.text(max_size=80))
def test_junk_never_parses_unless_it_is_a_canonical_token(junk: str) -> None:
    raw = parse_token(junk, TokenPurpose.LINK)
    if raw is not None:
        body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        assert junk == f"mll1_{body}"


@given(st.binary(min_size=32, max_size=32))
def test_a_non_canonical_spelling_of_a_token_is_refused(raw: bytes) -> None:
    body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert parse_token(f"mll1_{body}", TokenPurpose.LINK) == raw
    last = body[-1]
    # the last of 43 chars carries 2 padding bits; another char with the same 4 high bits decodes
    # to the same bytes and must not be accepted as a second spelling
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(last)
    for twin in alphabet[index & ~3 : (index & ~3) + 4]:
        if twin != last:
            assert parse_token(f"mll1_{body[:-1]}{twin}", TokenPurpose.LINK) is None


@given(st.binary(max_size=200), st.binary(max_size=100))
def test_the_precomputed_mac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    import hashlib
    import hmac

    from magiclink_core.domain.tokens import _Mac

    assert _Mac(key).hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()


def test_a_digest_is_hmac_sha256_under_the_derived_key() -> None:
    import hashlib
    import hmac

    from magiclink_core.domain.tokens import _derive

    token = new_token(TokenPurpose.SESSION)
    expected = hmac.new(_derive(KEY_A, TokenPurpose.SESSION), token.encode(), hashlib.sha256)
    assert Keyring([KEY_A]).digest(token, TokenPurpose.SESSION) == expected.hexdigest()
