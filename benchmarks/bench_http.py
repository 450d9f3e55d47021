"""Complete sign-in flows over HTTP, with uvicorn on 127.0.0.1 (target 7), and a soak.

The server (a child process pinned to core 0) is a Starlette app behind MagicLinkMiddleware on one
storage, mailing through ``SMTPMailer`` to an SMTP server in the load generator (this process,
pinned to core 1, an aiosmtpd protocol served on its event loop). One flow, with httpx:
``GET /auth/v1/client``, ``POST .../sign_ins``, ``POST .../prepare_first_factor``, the email
received and its link read, ``GET /auth/v1/verify?token=...`` (the click, on the same client: it
signs in and redirects), ``GET /app`` with the session cookie. Reported per storage: flows per
second at a fixed concurrency, p99 of each route, and the server's CPU time per flow (from
``/proc``). The users exist before the clock starts.

``--soak SECONDS`` runs flows at a steady rate on SQLite and checks at the end: no error, the
server's memory flat (resident size at the end against a third of the way in), nothing lost
(every prepared sign-in's email arrived, every link worked once and a second click of each, from
another browser, signed nobody in, every session still valid).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from email import message_from_bytes
from email.policy import default as default_policy
from http.cookiejar import CookieJar
from typing import Any

from ._harness import Section, not_installed
from ._stores import STORES

_TOKEN = re.compile(r"token=(mll1_[A-Za-z0-9_-]{43})")
ROUTES = ("client", "sign_in", "prepare", "verify", "app")


def _pin(core: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[core % len(cores)]})


# -- the server (a child process) -----------------------------------------------------------------


async def serve(store: str, port: int, smtp_port: int, users: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from magiclink_asgi import MagicLinkMiddleware, require_user
    from magiclink_core import MagicLinks
    from magiclink_core.mailers import MemoryMailer, SMTPMailer

    from ._stores import open_store, settings
    from .bench_middleware import signed_in

    async def app_route(request: Request) -> JSONResponse:
        return JSONResponse({"user": require_user(request).id})

    async with open_store(store) as storage:
        setup_mail = MemoryMailer()
        config = settings(base_url=f"http://127.0.0.1:{port}")
        setup = MagicLinks(config, storage=storage, mailer=setup_mail)
        for i in range(users):  # the accounts, made before the clock starts
            await signed_in(setup, setup_mail, f"user{i}@example.org")
        mailer = SMTPMailer("127.0.0.1", smtp_port, sender="noreply@example.org", tls="none")
        links = MagicLinks(config, storage=storage, mailer=mailer)
        app = Starlette(
            routes=[Route("/app", app_route)],
            middleware=[Middleware(MagicLinkMiddleware, magiclinks=links, pages=False)],
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        await server.serve()


# -- the load generator ---------------------------------------------------------------------------


class Inbox:
    """The SMTP server of the load generator: each email's link, by recipient."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=default_policy)
        body = message.get_body(("plain",))
        match = _TOKEN.search(body.get_content() if body is not None else "")
        self.received += 1
        for to in envelope.rcpt_tos:
            future = self.waiting.pop(to, None)
            if future is not None and not future.done() and match is not None:
                future.set_result(match.group(1))
        return "250 OK"

    def expect(self, to: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting[to] = future
        return future


class _NoJar(CookieJar):
    """Keeps no cookie: each flow is a browser of its own and sends its own."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Any) -> None:
        return None


class Load:
    def __init__(self, base: str, inbox: Inbox) -> None:
        import httpx

        self.base = base
        self.inbox = inbox
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.done: list[tuple[str, dict[str, str]]] = []  # (token, cookies) of each flow
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(base_url=base, limits=limits, timeout=30, cookies=_NoJar())

    async def _timed(
        self,
        route: str,
        method: str,
        url: str,
        cookies: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        start = time.perf_counter()
        response = await self.get(method, url, cookies, **kwargs)
        self.latency[route].append(time.perf_counter() - start)
        return response

    async def get(
        self, method: str, url: str, cookies: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """A request carrying exactly ``cookies`` (each flow is its own browser)."""
        headers = dict(kwargs.pop("headers", {}))
        if cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def flow(self, email: str) -> None:
        try:
            await self._flow(email)
        except Exception as exc:
            self.errors.append(f"{email}: {type(exc).__name__}: {exc}")

    async def _flow(self, email: str) -> None:
        headers = {"origin": self.base}
        r = await self._timed("client", "GET", "/auth/v1/client")
        cookies = _set_cookies(r)
        r = await self._timed(
            "sign_in",
            "POST",
            "/auth/v1/client/sign_ins",
            json={"identifier": email},
            cookies=cookies,
            headers=headers,
        )
        _ok(r, 200)
        mail = self.inbox.expect(email)
        r = await self._timed(
            "prepare",
            "POST",
            f"/auth/v1/client/sign_ins/{r.json()['id']}/prepare_first_factor",
            json={"strategy": "email_link", "redirect_url": "/app"},
            cookies=cookies,
            headers=headers,
        )
        _ok(r, 200)
        token = await asyncio.wait_for(mail, 30)
        r = await self._timed("verify", "GET", f"/auth/v1/verify?token={token}", cookies=cookies)
        _ok(r, 303)
        cookies.update(_set_cookies(r))
        r = await self._timed("app", "GET", "/app", cookies=cookies)
        _ok(r, 200)
        self.done.append((token, cookies))


def _set_cookies(response: Any) -> dict[str, str]:
    """The cookies a response sets, read from its headers (no cookie jar: one per flow)."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, value = header.split(";", 1)[0].partition("=")
        found[name.strip()] = value.strip()
    return found


def _ok(response: Any, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.url.path}: {response.status_code} {response.text[:200]}"
        )


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Server:
    """The server process on one storage, and the load generator's SMTP inbox."""

    def __init__(self, store: str, users: int) -> None:
        self.store, self.users = store, users

    async def __aenter__(self) -> Server:
        from aiosmtpd.smtp import SMTP

        from .bench_mail import free_port

        _pin(1)
        self.inbox = Inbox()
        loop = asyncio.get_running_loop()
        self.smtp = await loop.create_server(
            lambda: SMTP(self.inbox, hostname="bench.local"), "127.0.0.1", 0
        )
        smtp_port = self.smtp.sockets[0].getsockname()[1]
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_http",
            "serve",
            self.store,
            str(self.port),
            str(smtp_port),
            str(self.users),
        ]
        self.process = subprocess.Popen(command, cwd=os.path.dirname(os.path.dirname(__file__)))  # noqa: ASYNC220
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(1200):  # the accounts are made first
            if self.process.poll() is not None:
                raise RuntimeError(f"the server on {self.store} exited ({self.process.returncode})")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return self
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not start")

    async def __aexit__(self, *exc_info: object) -> None:
        self.process.terminate()
        try:
            # waited for off the loop: the server's shutdown closes its SMTP connection to the
            # inbox served by this very loop (a blocking wait stalled its QUIT for the timeout)
            await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.smtp.close()


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] if ordered else 0.0


async def flows_per_second(store: str, flows: int, concurrency: int) -> dict[str, Any]:
    async with Server(store, flows) as server:
        load = Load(server.base, server.inbox)
        for i in range(min(3, flows)):  # warm: connections, statements, templates
            await load.flow(f"user{i}@example.org")
        load.latency.clear()
        load.done.clear()
        queue = [f"user{i}@example.org" for i in range(flows)]
        cpu = _cpu_seconds(server.process.pid)
        start = time.perf_counter()

        async def worker() -> None:
            while queue:
                await load.flow(queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds(server.process.pid) - cpu
        await load.http.aclose()
    return {
        "rate": len(load.done) / elapsed,
        "cpu": cpu / max(1, len(load.done)),
        "p99": {route: p99(load.latency[route]) for route in ROUTES},
        "errors": load.errors,
    }


async def run(quick: bool) -> Section:
    section = Section("Over HTTP: uvicorn on 127.0.0.1, complete sign-in flows (target 7)")
    missing = not_installed("httpx", "uvicorn", "aiosmtpd.smtp")
    if missing is not None:
        section.add("HTTP flows", "skipped", f"{missing} is not installed")
        return section
    flows, concurrency = (4, 2) if quick else (200, 10)
    for store in STORES:
        try:
            result = await flows_per_second(store, flows, concurrency)
        except RuntimeError as exc:
            section.add(f"{store}", "skipped", str(exc))
            continue
        p99s = ", ".join(f"{r} {result['p99'][r] * 1e3:.0f}" for r in ROUTES)
        section.add(
            f"{store}: flows/s at concurrency {concurrency} ({flows} flows)",
            f"{result['rate']:,.1f} flows/s",
            f"server CPU {result['cpu'] * 1e3:.1f} ms/flow, "
            f"{result['cpu'] * 1e3 / len(ROUTES):.2f} ms/request",
            f"p99 ms: {p99s}",
            "no errors",
            not result["errors"],
        )
        for error in result["errors"][:3]:
            section.note(f"{store}: {error}")
    section.note(
        "The server and the load generator each pinned to a core of their own; the email goes "
        "through SMTPMailer to the load generator's SMTP server (plain SMTP on loopback). A flow "
        f"is {len(ROUTES)} requests ({', '.join(ROUTES)}); the server's CPU per request is its "
        "CPU per flow over them, the email's send included."
    )
    return section


async def soak(seconds: float, rate: float = 5.0, store: str = "sqlite") -> Section:
    section = Section(f"Soak: {seconds:g} s at {rate:g} flows/s on {store} (target 7)")
    total = int(seconds * rate)
    async with Server(store, total) as server:
        load = Load(server.base, server.inbox)
        rss: list[tuple[float, int]] = []
        started = time.perf_counter()
        tasks = set()
        for i in range(total):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(load.flow(f"user{i}@example.org"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if i % int(rate * 5) == 0:
                rss.append((time.perf_counter() - started, rss_bytes(server.process.pid)))
        await asyncio.gather(*tasks)
        rss.append((time.perf_counter() - started, rss_bytes(server.process.pid)))
        # nothing lost: every link worked once, a second click (another browser: the browser
        # that used it is answered "you're signed in", to its own session) signs nobody in,
        # and every session lives
        again = [
            await load.get("GET", f"/auth/v1/verify?token={token}", {}) for token, _ in load.done
        ]
        second_sign_ins = sum(1 for r in again if _set_cookies(r).get("magiclink_session"))
        alive = [await load.get("GET", "/app", cookies) for _, cookies in load.done]
        dead = sum(1 for r in alive if r.status_code != 200)
        await load.http.aclose()
    third = next((b for t, b in rss if t >= seconds / 3), rss[0][1])
    growth = rss[-1][1] / third - 1
    section.add(
        "flows started / completed",
        f"{total} / {len(load.done)}",
        "",
        "",
        "all",
        len(load.done) == total,
    )
    section.add("errors", str(len(load.errors)), "", "", "none", not load.errors)
    section.add(
        "emails received / sign-ins prepared",
        f"{server.inbox.received} / {total}",
        "",
        "",
        "all",
        server.inbox.received >= total,
    )
    section.add(
        "links that signed in on a second click",
        str(second_sign_ins),
        "",
        "",
        "none",
        second_sign_ins == 0,
    )
    section.add("sessions no longer valid at the end", str(dead), "", "", "none", dead == 0)
    section.add(
        "server resident memory: a third of the way in → end",
        f"{third / 2**20:.1f} → {rss[-1][1] / 2**20:.1f} MiB",
        "",
        f"{growth:+.1%}",
        "flat (≤ +10 %)",
        growth <= 0.10,
    )
    for error in load.errors[:5]:
        section.note(error)
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("store")
    parser.add_argument("port", type=int)
    parser.add_argument("smtp_port", type=int)
    parser.add_argument("users", type=int)
    args = parser.parse_args()
    _pin(0)
    asyncio.run(serve(args.store, args.port, args.smtp_port, args.users))
