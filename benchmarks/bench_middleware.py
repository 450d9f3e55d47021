"""What MagicLinkMiddleware adds to a request of the host app, against the bare app and a peer.

Requests are driven straight through the ASGI stack (no sockets), so the ratios show the
middleware's own cost:

- bare: a Starlette app with one JSON route;
- peer: the same app behind Starlette's SessionMiddleware, with a session cookie
  (a stateless itsdangerous-signed cookie: cheap, but not revocable server-side);
- magiclink, signed out: no cookie, nothing to check;
- magiclink, signed in: a session cookie, checked on every request (one keyed digest, one
  storage read; SQLite and MemoryStorage shown).

Run: python benchmarks/bench_middleware.py
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from magiclink_asgi import MagicLinkMiddleware
from magiclink_core import MagicLinks, Settings, Storage
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage, SQLiteStorage

N = 5_000
ROUNDS = 5
BASE = "http://localhost:8000"


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def app_with(*middleware: Middleware) -> Starlette:
    return Starlette(routes=[Route("/", home)], middleware=list(middleware))


async def call(app: Any, cookie: str | None) -> None:
    headers = [(b"host", b"localhost:8000")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
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

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200

    await app(scope, receive, send)


async def per_request(run: Callable[[], Awaitable[None]]) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            await run()
        samples.append((time.perf_counter() - start) / N)
    return statistics.median(samples)


async def signed_in_cookie(links: MagicLinks, mailer: MemoryMailer) -> str:
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "bench@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    token = mailer.outbox[-1].text.split("token=")[1].split()[0]
    result = await links.verify_link(token, client)
    assert result.session_token is not None
    return f"magiclink_session={result.session_token}"


def magiclinks_on(storage: Storage) -> tuple[MagicLinks, MemoryMailer]:
    mailer = MemoryMailer()
    settings = Settings(secret="bench-" + "x" * 40, base_url=BASE, links_per_address=0)
    return MagicLinks(settings, storage=storage, mailer=mailer), mailer


async def main() -> None:
    results: dict[str, float] = {}
    bare = app_with()
    results["bare Starlette app"] = await per_request(lambda: call(bare, None))
    try:
        from itsdangerous import TimestampSigner
        from starlette.middleware.sessions import SessionMiddleware

        signer = TimestampSigner("bench-secret")
        cookie = "session=" + signer.sign(b"eyJ1c2VyIjogIjEyMyJ9").decode()
        peer = app_with(Middleware(SessionMiddleware, secret_key="bench-secret"))
        results["+ Starlette SessionMiddleware, with a cookie"] = await per_request(
            lambda: call(peer, cookie)
        )
    except ImportError:
        print("itsdangerous is not installed: the peer row is left out")

    memory_links, memory_mailer = magiclinks_on(MemoryStorage())
    memory_app = app_with(Middleware(MagicLinkMiddleware, magiclinks=memory_links, pages=False))
    results["+ MagicLinkMiddleware, signed out"] = await per_request(lambda: call(memory_app, None))
    memory_cookie = await signed_in_cookie(memory_links, memory_mailer)
    results["+ MagicLinkMiddleware, signed in (MemoryStorage)"] = await per_request(
        lambda: call(memory_app, memory_cookie)
    )
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteStorage(str(Path(folder) / "bench.sqlite3"))
        sqlite_links, sqlite_mailer = magiclinks_on(sqlite)
        sqlite_app = app_with(Middleware(MagicLinkMiddleware, magiclinks=sqlite_links, pages=False))
        sqlite_cookie = await signed_in_cookie(sqlite_links, sqlite_mailer)
        results["+ MagicLinkMiddleware, signed in (SQLiteStorage)"] = await per_request(
            lambda: call(sqlite_app, sqlite_cookie)
        )
        await sqlite.close()

    base = results["bare Starlette app"]
    print(f"{'what':52} {'µs/request':>11} {'x bare':>7}")
    for name, seconds in results.items():
        print(f"{name:52} {seconds * 1e6:11.1f} {seconds / base:7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
