"""The pages' ``breakable_email`` filter: an address shown as HTML that wraps after its "@"."""

from __future__ import annotations

import html

from hypothesis import given
from hypothesis import strategies as st

from magiclink_asgi.templates import breakable_email


@given(st.text())
def test_the_address_reads_the_same_and_may_break_only_after_its_last_at_sign(text: str) -> None:
    shown = str(breakable_email(text))
    # escaped: no markup of the address's own survives
    assert shown.replace("@<wbr>", "@").count("<") == 0
    assert html.unescape(shown.replace("<wbr>", "")) == text
    expected = 0 if "@" not in text else 1
    assert shown.count("<wbr>") == expected
    if expected:
        assert shown.endswith(str(breakable_email(text.rpartition("@")[2])))
        assert shown.rpartition("<wbr>")[0].endswith("@")
