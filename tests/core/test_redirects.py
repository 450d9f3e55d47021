"""Redirect targets are allowlisted origins only."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magiclink_core import InvalidRedirectError
from magiclink_core.domain.redirects import check_redirect_url, origin_of

BASE = "https://app.example.com"
ALLOWED = ["https://admin.example.com"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/welcome", "https://app.example.com/welcome"),
        ("/a?b=c#d", "https://app.example.com/a?b=c#d"),
        ("https://app.example.com/x", "https://app.example.com/x"),
        ("https://APP.example.com:443/x", "https://APP.example.com:443/x"),
        ("https://admin.example.com/dash", "https://admin.example.com/dash"),
    ],
)
def test_allowed_targets(url: str, expected: str) -> None:
    assert check_redirect_url(url, base_url=BASE, allowed_origins=ALLOWED) == expected


@pytest.mark.parametrize(
    "url",
    [
        "//evil.example/x",
        "///evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "https://app.example.com.evil.example/",
        "https://app.example.com@evil.example/",
        "https://user:pw@app.example.com/",
        "http://app.example.com/",  # another scheme is another origin
        "https://app.example.com:8443/",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https://app.example.com/\nSet-Cookie:x",
        " https://app.example.com/",
        "https://app.example.com:99999/",
        "",
        "relative/path",
        "x" * 3000,
    ],
)
def test_refused_targets(url: str) -> None:
    with pytest.raises(InvalidRedirectError) as caught:
        check_redirect_url(url, base_url=BASE, allowed_origins=ALLOWED)
    assert caught.value.code == "redirect_url_not_allowed"


@given(st.text(max_size=200))
def test_whatever_is_accepted_lands_on_an_allowed_origin(url: str) -> None:
    try:
        target = check_redirect_url(url, base_url=BASE, allowed_origins=ALLOWED)
    except InvalidRedirectError:
        return
    assert origin_of(target) in {"https://app.example.com", "https://admin.example.com"}
