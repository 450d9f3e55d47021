"""Email addresses are validated and normalised by email-validator, offline."""

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from magiclink_core import InvalidEmailError
from magiclink_core.domain.emails import (
    MAX_EMAIL_LENGTH,
    MAX_LOCAL_PART_OCTETS,
    envelope_address,
    normalise_email,
)

# the letters whose lower case is longer in UTF-8 (2 octets to 3): "İ" is "i" + U+0307
LENGTHENED_BY_LOWER_CASE = "\u0130\u023a\u023e"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("ann@example.org", "ann@example.org"),
        ("  Ann@Example.ORG ", "ann@example.org"),
        ("ann+tag@sub.example.org", "ann+tag@sub.example.org"),
        ("zoë@exämple.org", "zoë@exämple.org"),
    ],
)
def test_valid_addresses_are_normalised(raw: str, normal: str) -> None:
    assert normalise_email(raw) == normal


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ann",
        "ann@",
        "@example.org",
        "ann@@example.org",
        "Ann <ann@example.org>",
        "ann@example",
        "ann@exa mple.org",
        "a" * 250 + "@x.org",
        "a" * 65 + "@example.org",
        # 64 octets as typed, 96 once lower-cased
        "\u0130" * 32 + "@example.org",
        "\u023a" * 32 + "@example.org",
        # 234 octets as typed, 255 once lower-cased
        "\u0130" * 21 + "a@" + ".".join(["a" * 63, "b" * 63, "c" * 58]) + ".org",
        None,
        42,
        ["ann@example.org"],
    ],
)
def test_invalid_input_is_a_typed_error(raw: object) -> None:
    with pytest.raises(InvalidEmailError) as caught:
        normalise_email(raw)
    assert caught.value.code == "invalid_email_address" and caught.value.long_message


@given(st.one_of(st.text(max_size=300), st.emails()))
def test_any_text_is_either_normalised_or_refused_cleanly(raw: str) -> None:
    try:
        normal = normalise_email(raw)
    except InvalidEmailError:
        return
    assert normal == normal.lower() and "@" in normal and normalise_email(normal) == normal


_LOCAL = st.text(
    st.sampled_from("abcXYZ019.+_-\u00fc\u00dc\u00df" + LENGTHENED_BY_LOWER_CASE),
    min_size=1,
    max_size=70,
)
_DOMAIN = st.lists(
    st.sampled_from(["a" * 63, "b" * 48, "example", "xn--bcher-kva", "b\u00fccher", "s"]),
    min_size=1,
    max_size=4,
).map(lambda labels: ".".join([*labels, "org"]))


@given(_LOCAL, _DOMAIN)
@example("\u0130" * 32, "example.org")
@example("\u0130" * 21 + "a", ".".join(["a" * 63, "b" * 63, "c" * 58, "org"]))
def test_whatever_is_returned_keeps_every_documented_limit(local: str, domain: str) -> None:
    try:
        normal = normalise_email(f"{local}@{domain}")
    except InvalidEmailError:
        return
    stored_local, _, _ = normal.rpartition("@")
    assert len(stored_local.encode()) <= MAX_LOCAL_PART_OCTETS
    assert len(normal.encode()) <= MAX_EMAIL_LENGTH
    assert len(envelope_address(normal).encode()) <= MAX_EMAIL_LENGTH
    assert unicodedata.normalize("NFKC", stored_local) == stored_local
    assert normal == normal.lower()
    assert normalise_email(normal) == normal
