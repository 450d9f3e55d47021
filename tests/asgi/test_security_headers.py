"""The headers every answer under the prefix carries: ``Strict-Transport-Security`` (on by default
when ``base_url`` is https, a middleware option turns it off or sets its max-age),
``X-Content-Type-Options: nosniff``, and ``object-src 'none'`` in every Content-Security-Policy.
The app's own responses are the app's: the middleware adds neither HSTS nor a CSP to them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magiclink_asgi import MagicLinkMiddleware
from magiclink_asgi.security import HSTS_DEFAULT_SECONDS

from .harness import make_magiclinks

pytestmark = pytest.mark.anyio
HTTPS = "https://app.example.com"
LOCAL = "http://localhost:8000"


async def app_page(scope: Any, receive: Any, send: Any) -> None:
    """The host app: one plain page."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"the app"})


def client(base_url: str, **options: Any) -> httpx.AsyncClient:
    magiclinks, _ = make_magiclinks(base_url)
    app = MagicLinkMiddleware(app_page, magiclinks=magiclinks, **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url)


async def every_kind_of_answer(c: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """One request for each kind of answer the middleware gives under its prefix."""
    css = await c.get("/auth/static/magiclink.css")
    return {
        "api": await c.get("/auth/v1/client"),
        "api error (csrf)": await c.post("/auth/v1/client/sign_ins", data={"identifier": "a"}),
        "api not found": await c.get("/auth/v1/nothing-here"),
        "openapi": await c.get("/auth/v1/openapi.json"),
        "landing": await c.get("/auth/v1/verify?token=mll1_" + "A" * 43),
        "landing without a token": await c.get("/auth/v1/verify"),
        "hosted page": await c.get("/auth/sign-in"),
        "hosted page, HEAD": await c.head("/auth/sign-up"),
        "redirect": await c.get("/auth/user"),
        "not found page": await c.get("/auth/no-such-page"),
        "method not allowed": await c.delete("/auth/sign-in"),
        "static": css,
        "static, not modified": await c.get(
            "/auth/static/magiclink.css", headers={"if-none-match": css.headers["etag"]}
        ),
        "icon": await c.get("/auth/static/favicon.svg"),
    }


async def test_hsts_is_on_every_answer_under_the_prefix_when_base_url_is_https() -> None:
    async with client(HTTPS) as c:
        answers = await every_kind_of_answer(c)
        own = await c.get("/")
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses["redirect"] == 303 and statuses["static, not modified"] == 304
    assert statuses["api error (csrf)"] == 403 and statuses["not found page"] == 404
    for name, response in answers.items():
        assert response.headers.get("strict-transport-security") == (
            f"max-age={HSTS_DEFAULT_SECONDS}"
        ), name
        assert response.headers.get_list("strict-transport-security") == [
            f"max-age={HSTS_DEFAULT_SECONDS}"
        ], name
    assert HSTS_DEFAULT_SECONDS >= 31_536_000  # a year at least, as the HSTS guidance asks
    assert own.text == "the app"
    assert "strict-transport-security" not in own.headers


async def test_hsts_is_off_over_plain_http_by_default() -> None:
    async with client(LOCAL) as c:
        answers = await every_kind_of_answer(c)
    for name, response in answers.items():
        assert "strict-transport-security" not in response.headers, name


@pytest.mark.parametrize(
    ("base_url", "seconds", "expected"),
    [
        (HTTPS, 0, None),  # turned off
        (HTTPS, 600, "max-age=600"),
        (HTTPS, 63_072_000, "max-age=63072000"),
        (LOCAL, 600, "max-age=600"),  # asked for: sent (browsers heed it over https only)
    ],
)
async def test_the_hsts_option(base_url: str, seconds: int, expected: str | None) -> None:
    async with client(base_url, hsts_seconds=seconds) as c:
        for response in (await c.get("/auth/v1/client"), await c.get("/auth/sign-in")):
            assert response.headers.get("strict-transport-security") == expected


def test_a_negative_hsts_max_age_is_refused() -> None:
    magiclinks, _ = make_magiclinks(HTTPS)
    with pytest.raises(ValueError, match="hsts_seconds"):
        MagicLinkMiddleware(app_page, magiclinks=magiclinks, hsts_seconds=-1)


async def test_nosniff_on_every_answer() -> None:
    async with client(HTTPS) as c:
        answers = await every_kind_of_answer(c)
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name


async def test_every_content_security_policy_forbids_plugins() -> None:
    """``object-src 'none'``: no <object> or <embed> can load, on any page that has a CSP (the
    hosted pages, the landing, an email shown in the development mailbox)."""
    async with client(LOCAL, dev_mailbox=True) as c:
        answers = await every_kind_of_answer(c)
        origin = {"origin": LOCAL}
        sign_up = await c.post("/auth/v1/client/sign_ups", json={"email_address": "a@b.example"})
        sign_up.raise_for_status()
        prepared = await c.post(
            f"/auth/v1/client/sign_ups/{sign_up.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": LOCAL + "/"},
            headers=origin,
        )
        prepared.raise_for_status()
        answers["mailbox"] = await c.get("/auth/dev/mailbox")
        answers["mailbox message"] = await c.get("/auth/dev/mailbox/1")
        answers["mailbox email"] = await c.get("/auth/dev/mailbox/1/html")
    with_csp = {name: r for name, r in answers.items() if "content-security-policy" in r.headers}
    pages = {"landing", "landing without a token", "hosted page", "not found page", "mailbox"}
    assert pages | {"mailbox message", "mailbox email"} <= set(with_csp)
    for name, response in with_csp.items():
        directives = [d.strip() for d in response.headers["content-security-policy"].split(";")]
        assert "object-src 'none'" in directives, name


async def test_no_answer_but_a_static_file_or_a_mailbox_email_can_be_framed() -> None:
    """``frame-ancestors 'none'`` on the JSON API, the landing and the pages (clickjacking of a
    confirm button, or of the account page); the development mailbox frames its own emails."""
    async with client(LOCAL, dev_mailbox=True) as c:
        answers = await every_kind_of_answer(c)
    documents = ("text/html", "application/json")
    checked = set()
    for name, response in answers.items():
        if not response.headers.get("content-type", "").startswith(documents):
            continue
        checked.add(name)
        directives = [
            d.strip() for d in response.headers.get("content-security-policy", "").split(";")
        ]
        assert "frame-ancestors 'none'" in directives, name
    assert {
        "api",
        "api error (csrf)",
        "openapi",
        "hosted page",
        "landing without a token",
    } <= checked


async def test_every_page_opened_from_another_site_shares_no_window_with_it() -> None:
    async with client(LOCAL) as c:
        answers = await every_kind_of_answer(c)
    pages = {
        k: r
        for k, r in answers.items()
        if r.headers.get("content-type", "").startswith("text/html")
    }
    assert {"landing without a token", "hosted page", "not found page"} <= set(pages)
    for name, response in pages.items():
        assert response.headers.get("cross-origin-opener-policy") == "same-origin", name
