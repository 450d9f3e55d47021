"""Hosted pages as a plain ASGI app: routing, redirects, static files, headers, theming."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import httpx
import jinja2
import pytest

from magiclink_asgi.cookies import CookieNames
from magiclink_asgi.identity import MagicLinkState
from magiclink_asgi.pages import HostedPages, template_loader
from magiclink_core import MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage
from tests.support import SECRET

pytestmark = pytest.mark.anyio


def make_links(base_url: str = "http://localhost:8000", **settings: Any) -> MagicLinks:
    return MagicLinks(
        Settings(secret=SECRET, base_url=base_url, **settings),
        storage=MemoryStorage(),
        mailer=MemoryMailer(),
    )


def with_user(app: Any, signed_in: bool) -> Any:
    """What the middleware does before calling the pages: identity into the scope, with its
    state (the cookie names, secure as the base URL says)."""
    user = SimpleNamespace(
        is_authenticated=signed_in, identity="user_1", display_name="ada@example.com"
    )
    settings = app.magiclinks.settings
    names = CookieNames.build(settings, secure=settings.is_https)
    state = MagicLinkState(app.prefix, app.magiclinks, names, None, None)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        scope = dict(scope, user=user, auth=None, magiclink=state)
        await app(scope, receive, send)

    return wrapped


def client(app: Any, *, signed_in: bool = False) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=with_user(app, signed_in))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost:8000")


@pytest.fixture
def pages() -> HostedPages:
    return HostedPages(make_links(app_name="Acme"), after_sign_in_url="/home")


@pytest.mark.parametrize(
    ("path", "element"),
    [
        ("/auth/sign-in", "magiclink-sign-in"),
        ("/auth/sign-up", "magiclink-sign-up"),
        ("/auth/verify", "magiclink-verification"),
        ("/auth/sign-out", "magiclink-sign-out"),
    ],
)
async def test_each_page_is_a_shell_mounting_its_component(
    pages: HostedPages, path: str, element: str
) -> None:
    async with client(pages) as c:
        r = await c.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<{element} " in r.text
    assert re.search(r'<script type="module" src="/auth/static/magiclink\.js\?v=\w+">', r.text)
    assert '<meta name="viewport"' in r.text
    assert "<title>" in r.text and "Acme" in r.text
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]


async def test_profile_sends_signed_out_visitors_to_sign_in(pages: HostedPages) -> None:
    async with client(pages) as c:
        r = await c.get("/auth/user")
    assert r.status_code == 303
    assert r.headers["location"] == "/auth/sign-in?redirect_url=/auth/user"


async def test_profile_for_a_signed_in_user(pages: HostedPages) -> None:
    async with client(pages, signed_in=True) as c:
        r = await c.get("/auth/user")
    assert r.status_code == 200
    assert "<magiclink-user-profile " in r.text


async def test_signed_in_visitors_skip_sign_in_and_sign_up(pages: HostedPages) -> None:
    async with client(pages, signed_in=True) as c:
        assert (await c.get("/auth/sign-in")).headers["location"] == "/home"
        assert (await c.get("/auth/sign-up")).headers["location"] == "/"
        r = await c.get("/auth/sign-in?redirect_url=/deep/page%3Fx%3D1")
        assert r.headers["location"] == "/deep/page?x=1"
        # a query that is not UTF-8 reads as none: the default, as for a redirect not allowed
        r = await c.get("/auth/sign-in?redirect_url=/deep/page%ff")
        assert r.headers["location"] == "/home"


async def test_a_visitor_sent_back_at_once_is_told_instead_of_sent_on_again(
    pages: HostedPages,
) -> None:
    """An app page that sends signed-in people back to sign in (a rule of its own): the second
    visit within seconds, for the same destination, gets the page, whose element then says
    "You're already signed in" (no-redirect) instead of a redirect loop; once."""
    async with client(pages, signed_in=True) as c:
        sent = await c.get("/auth/sign-in?redirect_url=/admin")
        assert sent.status_code == 303 and sent.headers["location"] == "/admin"
        mark = sent.headers["set-cookie"]
        assert "Max-Age=10" in mark and "Path=/auth" in mark and "HttpOnly" in mark
        back = await c.get("/auth/sign-in?redirect_url=/admin")
        assert back.status_code == 200
        assert 'after-sign-in-url="/admin"' in back.text and " no-redirect>" in back.text
        assert "Max-Age=0" in back.headers["set-cookie"]  # said once
        again = await c.get("/auth/sign-in?redirect_url=/admin")
        assert again.status_code == 303
        # elsewhere, or another destination: sent on as ever
        other = await c.get("/auth/sign-in?redirect_url=/elsewhere")
        assert other.status_code == 303 and other.headers["location"] == "/elsewhere"
    async with client(pages) as c:  # signed out: the form, never told it is signed in
        c.cookies.set("magiclink_sent_on", mark.split(";")[0].split("=", 1)[1], path="/auth")
        form = await c.get("/auth/sign-in?redirect_url=/admin")
        assert form.status_code == 200 and "no-redirect" not in form.text


async def test_over_https_the_sent_on_mark_is_a_secure_prefixed_cookie() -> None:
    pages = HostedPages(make_links("https://app.example"), after_sign_in_url="/home")
    transport = httpx.ASGITransport(app=with_user(pages, True))
    async with httpx.AsyncClient(transport=transport, base_url="https://app.example") as c:
        sent = await c.get("/auth/sign-in")
        mark = sent.headers["set-cookie"]
        assert mark.startswith("__Secure-magiclink_sent_on=") and "Secure" in mark
        back = await c.get("/auth/sign-in")  # the browser sends it back over https
        assert back.status_code == 200 and " no-redirect>" in back.text


async def test_after_urls_reach_the_components(pages: HostedPages) -> None:
    async with client(pages) as c:
        plain = (await c.get("/auth/sign-in")).text
        asked = (await c.get("/auth/sign-in?redirect_url=/protected")).text
        offsite = (await c.get("/auth/sign-in?redirect_url=//evil.example/x")).text
    assert 'after-sign-in-url="/home"' in plain
    assert 'after-sign-in-url="/protected"' in asked
    assert 'after-sign-in-url="/home"' in offsite and "evil" not in offsite


async def test_the_pages_tell_their_components_the_length_of_the_emailed_code() -> None:
    pages = HostedPages(make_links(email_code_digits=8))
    async with client(pages) as c:
        sign_in = (await c.get("/auth/sign-in")).text
        sign_up = (await c.get("/auth/sign-up")).text
    async with client(pages, signed_in=True) as c:
        profile = (await c.get("/auth/user")).text
    for html, element in [
        (sign_in, "magiclink-sign-in"),
        (sign_up, "magiclink-sign-up"),
        (profile, "magiclink-user-profile"),
    ]:
        tag = re.search(f"<{element} [^>]*>", html)
        assert tag and 'email-code-length="8"' in tag.group(0), html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/x", "/x"),
        ("/a/b?c=d#e", "/a/b?c=d#e"),
        ("//evil.example", "/d"),
        ("/\\evil.example", "/d"),
        ("https://evil.example/", "/d"),
        ("javascript:alert(1)", "/d"),
        ("/x\nSet-Cookie: a", "/d"),
        ("", "/d"),
        (None, "/d"),
        ("http://localhost:8000/y", "http://localhost:8000/y"),  # the app's own origin
        ("https://partner.example/z", "https://partner.example/z"),  # an allowlisted one
    ],
)
def test_next_urls_follow_the_cores_redirect_rule(value: str | None, expected: str) -> None:
    links = make_links(allowed_redirect_origins=["https://partner.example"])
    assert HostedPages(links).next_url(value, "/d") == expected


async def test_unknown_pages_are_404_and_other_methods_405(pages: HostedPages) -> None:
    async with client(pages) as c:
        r = await c.get("/auth/nothing-here")
        assert r.status_code == 404
        assert "Page not found" in r.text
        r = await c.post("/auth/sign-in")
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"


async def test_head_has_headers_and_no_body(pages: HostedPages) -> None:
    async with client(pages) as c:
        r = await c.head("/auth/sign-in")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("magiclink.js", "text/javascript; charset=utf-8"),
        ("magiclink.css", "text/css; charset=utf-8"),
    ],
)
async def test_static_files(pages: HostedPages, name: str, content_type: str) -> None:
    async with client(pages) as c:
        r = await c.get(f"/auth/static/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"] == content_type
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "must-revalidate" in r.headers["cache-control"]
        etag = r.headers["etag"]
        again = await c.get(f"/auth/static/{name}", headers={"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""
        versioned = await c.get(pages.static_url(name))
        assert "immutable" in versioned.headers["cache-control"]
        stale = await c.get(f"/auth/static/{name}?v=old")
        assert "immutable" not in stale.headers["cache-control"]


@pytest.mark.parametrize(
    "path",
    [
        "/auth/static/../pages.py",
        "/auth/static/%2e%2e/pages.py",
        "/auth/static/..%2fpages.py",
        "/auth/static/",
        "/auth/static/.hidden",
        "/auth/static/nope.js",
        "/auth/static/magiclink.js/",
        "/auth/static//etc/passwd",
    ],
)
async def test_static_files_never_leave_the_static_folder(pages: HostedPages, path: str) -> None:
    async with client(pages) as c:
        r = await c.get(path)
    assert r.status_code == 404
    assert b"HostedPages" not in r.content and b"root:" not in r.content


async def test_the_module_defines_the_components_and_the_guides_names(
    pages: HostedPages,
) -> None:
    async with client(pages) as c:
        js = (await c.get("/auth/static/magiclink.js")).text
    for name in (
        "magiclink-sign-in",
        "magiclink-sign-up",
        "magiclink-user-profile",
        "export const MagicLinkErrorCode",
        "export function isMagicLinkError",
        "export function createClient",
        "export function useMagicLink",
        "verifiedFromTheSameClient()",
        "handleMagicLinkVerification(",
        "createMagicLinkFlow()",
        "setSession(sessionId, beforeEmit)",
    ):
        assert name in js
    assert not re.search(r"^import ", js, re.M)
    assert "setInterval" not in js  # waiting is long polls, never a fixed-interval timer


async def test_theme_app_name_and_logo() -> None:
    pages = HostedPages(
        make_links(),
        app_name="Tom & <Jerry>",
        logo_url="https://cdn.example/logo.svg",
        theme={"accent": "#0b6e4f", "--ml-font": '"Inter", sans-serif'},
    )
    async with client(pages) as c:
        r = await c.get("/auth/sign-in")
    assert "Tom &amp; &lt;Jerry&gt;" in r.text
    assert "<Jerry>" not in r.text
    assert '<img class="ml-logo" src="https://cdn.example/logo.svg"' in r.text
    nonce = re.search(r"'nonce-([\w-]+)'", r.headers["content-security-policy"])
    assert nonce is not None
    style = re.search(rf'<style nonce="{nonce.group(1)}">(.*?)</style>', r.text)
    assert style is not None
    assert "--ml-accent: #0b6e4f;" in style.group(1)
    assert '--ml-font: "Inter", sans-serif;' in style.group(1)


@pytest.mark.parametrize(
    "theme",
    [
        {"accent": "red; } body { display: none"},
        {"accent": "</style><script>alert(1)</script>"},
        {"bad name": "red"},
        {"--x": "url(x)\\"},
    ],
)
def test_a_theme_cannot_escape_its_declaration(theme: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="CSS custom property"):
        HostedPages(make_links(), theme=theme)


def test_app_name_defaults_to_the_settings() -> None:
    assert HostedPages(make_links(app_name="Shop")).app_name == "Shop"


async def test_custom_urls_and_prefix() -> None:
    pages = HostedPages(
        make_links(verify_path="/account/v1/verify"),  # the prefix, given once
        sign_up_url="/join",
        user_profile_url="/me",
    )
    async with client(pages) as c:
        r = await c.get("/account/sign-in")
        assert 'sign-up-url="/join"' in r.text
        assert 'prefix="/account"' in r.text
        assert "/account/static/magiclink.js" in r.text
        r = await c.get("/account/user")
        assert r.headers["location"] == "/account/sign-in?redirect_url=/me"


async def test_a_prefix_that_disagrees_with_the_links_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="verify_path"):
        HostedPages(make_links(), prefix="/account")


async def test_non_http_scopes() -> None:
    pages = HostedPages(make_links())

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        raise AssertionError("nothing to send")

    await pages({"type": "lifespan"}, receive, send)
    with pytest.raises(RuntimeError):
        await pages({"type": "websocket", "path": "/auth/x"}, receive, send)


def test_macros_render_the_components() -> None:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.DictLoader({"page.html": PAGE}), template_loader()]),
        autoescape=True,
    )
    html = env.get_template("page.html").render(user=None)
    assert (
        '<magiclink-sign-in prefix="/auth" after-sign-in-url="/dash"></magiclink-sign-in>' in html
    )
    assert '<magiclink-sign-up prefix="/auth" email-code-length="7"></magiclink-sign-up>' in html
    assert '<magiclink-user-profile prefix="/x&#34;y">' in html
    assert html.count('<script type="module" src="/auth/static/magiclink.js"></script>') == 2
    assert '<a href="/auth/sign-in">Sign in</a>' in html


PAGE = """{% from "magiclink/macros.html" import sign_in, sign_up, user_profile, user_button %}
{{ sign_in(after_sign_in_url="/dash") }}
{{ sign_up(email_code_length=7) }}
{{ user_profile(prefix='/x"y') }}
{{ user_button(user) }}"""


async def test_every_page_declares_the_icon_it_serves(pages: HostedPages) -> None:
    async with client(pages) as c:
        html = (await c.get("/auth/sign-in")).text
        missing = await c.get("/auth/nope")
        href = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', html)
        assert href is not None and href.group(1) == pages.static_url("favicon.svg")
        assert href.group(1) in missing.text
        icon = await c.get(href.group(1))
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert "immutable" in icon.headers["cache-control"]


async def test_where_signing_out_goes() -> None:
    """By default the sign-out page stays and says so (the profile's sign-out goes there);
    ``after_sign_out_url`` sends both elsewhere."""
    default = HostedPages(make_links())
    async with client(default) as c:
        sign_out = (await c.get("/auth/sign-out")).text
    async with client(default, signed_in=True) as c:
        profile = (await c.get("/auth/user")).text
    assert "after-sign-out-url" not in sign_out
    assert 'sign-in-url="/auth/sign-in"' in sign_out
    assert 'after-sign-out-url="/auth/sign-out"' in profile

    elsewhere = HostedPages(make_links(), after_sign_out_url="/bye")
    async with client(elsewhere) as c:
        assert 'after-sign-out-url="/bye"' in (await c.get("/auth/sign-out")).text
    async with client(elsewhere, signed_in=True) as c:
        assert 'after-sign-out-url="/bye"' in (await c.get("/auth/user")).text
