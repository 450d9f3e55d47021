"""Email addresses are validated and normalised by email-validator, offline."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magiclink_core import InvalidEmailError
from magiclink_core.domain.emails import normalise_email


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
