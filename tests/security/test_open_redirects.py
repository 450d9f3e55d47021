"""Open redirects: every place a URL is accepted refuses the known bypasses, or keeps the visitor
on the app's own origin. The places: a prepare's ``redirect_url`` (core and HTTP API) and the
hosted pages' ``?redirect_url=`` / ``?after=`` (the core's rule, through ``next_url``)."""

from urllib.parse import urlsplit

import httpx
import pytest

from magiclink_asgi import HostedPages
from magiclink_core import InvalidRedirectError

from ..asgi.harness import build_app, make_magiclinks

pytestmark = pytest.mark.anyio
BASE = "https://app.example.com"

BYPASSES = [
    "//evil.example",  # scheme-relative
    "//evil.example/%2F..",
    "///evil.example",
    "/\\evil.example",  # backslashes: browsers read \\ as /
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example",
    "HTTPS://EVIL.EXAMPLE/",  # mixed case
    "https://app.example.com@evil.example/",  # userinfo: the host is evil.example
    "https://app.example.com:443@evil.example/",
    "https://evil.example@app.example.com/",  # credentials on our own host
    "https://app.example.com.evil.example/",
    "https://xn--pp-8cd.example.com/",  # an IDN look-alike (Cyrillic)
    "https://\u0430pp.example.com/",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https:evil.example",
    "/\t/evil.example",  # tabs and newlines are dropped by URL parsers
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "%2F%2Fevil.example",
    "http://app.example.com/",  # our host, but plain http
    "https://app.example.com:8443/",  # our host, another port
]
OURS = [
    "/welcome",
    "/a/b?c=d#e",
    "https://app.example.com/deep/page",
    "HTTPS://APP.EXAMPLE.COM/x",
    "/%2F%2Fevil.example",  # paths on our site: browsers do not decode these when navigating
    "/%09/evil.example",
]


def lands_on_our_origin(url: str) -> bool:
    absolute = urlsplit(url if not url.startswith("/") or url.startswith("//") else BASE + url)
    return (absolute.scheme, (absolute.hostname or "").lower(), absolute.port) == (
        "https",
        "app.example.com",
        None,
    )


@pytest.mark.parametrize("url", BYPASSES + OURS)
def test_the_core_refuses_every_bypass(url: str) -> None:
    links, _ = make_magiclinks(BASE)
    try:
        allowed = links.check_redirect_url(url)
    except InvalidRedirectError:
        assert url not in OURS
        return
    assert url not in BYPASSES, f"{url!r} was allowed as {allowed!r}"
    assert lands_on_our_origin(allowed)


@pytest.mark.parametrize("url", BYPASSES)
async def test_the_api_refuses_every_bypass_and_sends_nothing(url: str) -> None:
    links, mailer = make_magiclinks(BASE)
    app = build_app("starlette", links)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=BASE, headers={"origin": BASE}
    ) as browser:
        created = await browser.post(
            "/auth/v1/client/sign_ups", json={"email_address": "ann@example.org"}
        )
        prepared = await browser.post(
            f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": url},
        )
    assert prepared.status_code in {400, 422}, prepared.text
    assert mailer.outbox == []


@pytest.mark.parametrize("url", BYPASSES)
@pytest.mark.parametrize(
    "page", ["sign-in?redirect_url=", "sign-up?redirect_url=", "verify?after="]
)
async def test_the_hosted_pages_ignore_every_bypass(url: str, page: str) -> None:
    links, _ = make_magiclinks(BASE)
    pages = HostedPages(links, after_sign_in_url="/home", after_sign_up_url="/home")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(pages), base_url=BASE) as browser:
        response = await browser.get(f"/auth/{page}", params={}, follow_redirects=False)
        shown = await browser.get(
            f"/auth/{page.split('?')[0]}", params={page.split("?")[1].rstrip("="): url}
        )
    assert response.status_code == 200 and shown.status_code == 200
    assert 'url="/home"' in shown.text  # the page's own default, not the bypass
