"""Odd input on the landing: a token that is not ASCII is refused with a page (never a 500,
never copied into a header), and a link whose ``redirect_url`` holds non-ASCII signs the person
in and sends them there (the ``Location`` is an IRI made safe: percent-encoded ASCII)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from ._http import make_app
from ._links import sign_up, status_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "query",
    ["token=%E4%B8%AD", "token=%00", "token=%FF%FE", "token=a%0D%0ASet-Cookie:x=1", "token="],
)
async def test_a_malformed_token_is_refused_with_a_page(query: str) -> None:
    app = make_app()
    async with app.browser() as browser:
        answer = await browser.get(f"/auth/v1/verify?{query}")
        assert 400 <= answer.status_code < 500 or answer.status_code == 303, answer.text
        if answer.status_code == 303:  # moved off the URL: the page says the link is dead
            assert answer.headers["location"] == "/auth/v1/verify/confirm"
            answer = await browser.get(answer.headers["location"])
            assert 400 <= answer.status_code < 500
        assert "text/html" in answer.headers["content-type"]
        for cookie in answer.headers.get_list("set-cookie"):
            assert "\u4e2d" not in cookie and "%E4" not in cookie.upper()


async def test_a_non_ascii_redirect_signs_in_and_redirects() -> None:
    app = make_app()
    async with app.browser() as owner:
        _, link = await sign_up(app, owner, "ann@example.org", redirect_url="/日本?q=é")
        landed = await owner.get(link)
        assert landed.status_code == 303, landed.text
        location = landed.headers["location"]
        assert location.isascii()
        assert unquote(location).startswith("https://app.example.com/日本?q=é")
        assert "__magiclink_status=verified" in location
        assert any("magiclink_session=" in c for c in landed.headers.get_list("set-cookie"))
        assert await status_of(owner) == "complete"
        assert (await owner.get("/auth/v1/me")).status_code == 200
