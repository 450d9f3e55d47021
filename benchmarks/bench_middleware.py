"""What MagicLinkMiddleware adds to a request of the host app (targets 2 and 3).

Requests are driven straight through the ASGI stack (no sockets), the CPU time of each measured
side by side with:

- the bare app: a Starlette app with one JSON route;
- a pass-through middleware (``await app(scope, receive, send)``): the least any middleware adds;
- Starlette's ``SessionMiddleware`` with a session cookie (the peer: a stateless
  itsdangerous-signed cookie, checked and re-signed on every response, never revocable);
- magiclink without a cookie (target 3: within 5 % of the bare app);
- magiclink signed in, on each storage, with ``MagicLinks`` running (the app's lifespan) so the
  session cache serves (target 2: no slower than the peer); and with the cache off
  (``session_cache_ttl=0``), the price of one storage read per request.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from magiclink_asgi import MagicLinkMiddleware
from magiclink_core import MagicLinks
from magiclink_core.mailers import MemoryMailer

from ._harness import Section, ratio, side_by_side, us
from ._stores import STORES, Unavailable, magiclinks, open_store

_TOKEN = re.compile(r"[?&]token=(mll1_[A-Za-z0-9_-]{43})")


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


class PassThrough:
    """The floor of any ASGI middleware: one more call, nothing done."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def app_with(*middleware: Middleware) -> Starlette:
    return Starlette(routes=[Route("/", home)], middleware=list(middleware))


# what Chromium sends for a page of an app that set a cookie of its own (none of ours), in its
# order: the Cookie header last
BROWSER_HEADERS = [
    (b"host", b"localhost:8000"),
    (b"connection", b"keep-alive"),
    (b"sec-ch-ua", b'"Chromium";v="156", "Not-A.Brand";v="24"'),
    (b"sec-ch-ua-mobile", b"?0"),
    (b"sec-ch-ua-platform", b'"Linux"'),
    (b"upgrade-insecure-requests", b"1"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"sec-fetch-site", b"same-origin"),
    (b"sec-fetch-mode", b"navigate"),
    (b"sec-fetch-dest", b"document"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"cookie", b"csrftoken=Jm3kWq8vZ0pX2nR5tY7uB1cD4eF6gH9i; theme=dark"),
]


def request(
    app: Any, cookie: str | None, *, browser: bool = False
) -> Callable[[], Awaitable[None]]:
    headers = (
        list(BROWSER_HEADERS)
        if browser
        else [
            (b"host", b"localhost:8000"),
            (b"user-agent", b"benchmark/1.0"),
            (b"accept", b"application/json"),
        ]
    )
    if cookie:
        headers.append((b"cookie", cookie.encode()))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)

    return call


async def signed_in(links: MagicLinks, mailer: MemoryMailer, email: str) -> str:
    """The session token of a fresh user (signed up by link)."""
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, email)
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    await links.mail_sent()
    message = mailer.last_to(email)
    match = _TOKEN.search(message.text if message else "")
    if match is None:
        raise RuntimeError("no link in the email")
    result = await links.verify_link(match.group(1), client)
    if result.session_token is None:
        raise RuntimeError("no session")
    return result.session_token


@asynccontextmanager
async def signed_in_app(
    stack: AsyncExitStack, store: str, *, cache: bool
) -> AsyncIterator[tuple[Any, str]]:
    storage = await stack.enter_async_context(open_store(store))
    overrides = {} if cache else {"session_cache_ttl": timedelta(0)}
    links, mailer = magiclinks(storage, **overrides)
    await stack.enter_async_context(links)  # what the app's lifespan does
    app = app_with(Middleware(MagicLinkMiddleware, magiclinks=links, pages=False))
    token = await signed_in(links, mailer, f"bench-{store}@example.org")
    yield app, f"magiclink_session={token}"


async def run(quick: bool) -> Section:
    section = Section("A request of the host app through the middleware (targets 2 and 3)")
    n, rounds = (200, 2) if quick else (2_000, 15)
    variants: dict[str, Callable[[], Awaitable[None]]] = {}
    bare = app_with()
    variants["bare"] = request(bare, None)
    variants["bare, a browser's request"] = request(bare, None, browser=True)
    variants["pass"] = request(app_with(Middleware(PassThrough)), None)
    peer_cookie = None
    try:
        from itsdangerous import TimestampSigner
        from starlette.middleware.sessions import SessionMiddleware

        peer_cookie = (
            "session=" + TimestampSigner("bench-secret").sign(b"eyJ1IjogIjEyMyJ9").decode()
        )
        peer = app_with(Middleware(SessionMiddleware, secret_key="bench-secret"))
        variants["peer"] = request(peer, peer_cookie)
    except ImportError:
        section.note("itsdangerous is not installed: the SessionMiddleware rows are left out.")
    skipped: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        first = True
        for store in STORES:
            for cache in (True, False) if store != "memory" else (True,):
                try:
                    app, cookie = await stack.enter_async_context(
                        signed_in_app(stack, store, cache=cache)
                    )
                except Unavailable as exc:
                    skipped[store] = str(exc)
                    break
                if first:
                    variants["no cookie"] = request(app, None)
                    variants["a browser's request"] = request(app, None, browser=True)
                    first = False
                variants[f"{store}{'' if cache else ' uncached'}"] = request(app, cookie)
        times = await side_by_side(variants, n=n, rounds=rounds)
    base = times["bare"]
    section.add("bare Starlette app, one JSON route", us(base), "", "1.00× bare")
    section.add(
        "+ a pass-through ASGI middleware", us(times["pass"]), "bare", ratio(times["pass"], base)
    )
    out = times["no cookie"]
    section.add(
        "+ MagicLinkMiddleware, no cookie",
        us(out),
        f"bare {us(base)}",
        ratio(out, base, line=1.05),
        "≤ 1.05× bare",
        out / base <= 1.05,
    )
    browser_base, browser = times["bare, a browser's request"], times["a browser's request"]
    section.add(
        "for context: the same, a browser's request (14 headers, the app's own cookie, none of "
        "ours)",
        us(browser),
        f"bare, that request {us(browser_base)}",
        ratio(browser, browser_base),
    )
    peer_time = times.get("peer")
    if peer_time is not None:
        section.add(
            "+ Starlette SessionMiddleware, with its cookie (peer)",
            us(peer_time),
            "bare",
            ratio(peer_time, base),
        )
    for store in STORES:
        if store in skipped:
            section.add(f"+ MagicLinkMiddleware, signed in, {store}", "skipped", skipped[store])
            continue
        mine = times[store]
        if peer_time is None:
            section.add(
                f"+ MagicLinkMiddleware, signed in, {store}", us(mine), "bare", ratio(mine, base)
            )
        else:
            section.add(
                f"+ MagicLinkMiddleware, signed in, {store} (session cache)",
                us(mine),
                f"SessionMiddleware {us(peer_time)}",
                f"{ratio(mine, peer_time, line=1)} peer ({ratio(mine, base)} bare)",
                "≤ 1.00× peer",
                mine <= peer_time,
            )
    for store in STORES[1:]:
        if store in skipped or f"{store} uncached" not in times:
            continue
        mine = times[f"{store} uncached"]
        section.add(
            f"+ MagicLinkMiddleware, signed in, {store}, cache off (a read per request)",
            us(mine),
            "SessionMiddleware" if peer_time else "bare",
            ratio(mine, peer_time or base),
        )
    section.note(
        "CPU time of this process per request, best of rounds taken in turns (an order drawn "
        "each round). With the cache on, a signed-in request does no storage read (see the "
        "session cache rows of the session-check table); off, PostgreSQL and Redis rows exclude "
        "the servers' own time."
    )
    return section
