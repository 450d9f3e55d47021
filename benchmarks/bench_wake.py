"""Click-to-wake over HTTP, in one app instance and across two (target 1).

uvicorn servers, each a child process pinned to core 0 with its own storage object: one instance
on SQLite (the embedded default), PostgreSQL or Redis; two instances, A and B, on one SQLite
file, one fresh schema (PostgreSQL) or one key prefix (Redis), so each with its own notifier
(Unix datagram sockets, LISTEN/NOTIFY, pub/sub). Every instance polls storage once a minute
(``wait_poll_interval``), so only a notification can wake its waiters. The load generator (this
process, pinned to core 1) holds a browser's long poll on A (``GET
/auth/v1/client/sign_ins/{id}?wait=…&version=…``) while a phone opens the sign-in's link and
types the code on its confirmation page (``POST /auth/v1/verify/confirm``): on A itself with one
instance, on B with two. The figure is the time from sending that POST to the long poll's answer
arriving: p50 and p99 over the rounds, alone and with 1,000 other idle long polls held by A
(each its own browser and sign-in, all through one httpx client). Beside it, measured in the
same run: for one instance, the phone's own answer to its confirm (its redirect to the done
page; the waiter is woken in-process, once the click is written); across two, a datagram between
two Unix sockets (SQLite's), the raw driver's NOTIFY → LISTEN (asyncpg, two connections) and
PUBLISH → subscriber (redis-py), the least any wake-up across instances can take.

Each round's sign-in is started, and its link read from the outbox, with the core on this
process's own storage object (a setup, not timed); the servers only see the long polls and the
phone. Timings are printed, never asserted.

    python -m benchmarks --only wake            # as part of the benchmark table
    python -m benchmarks.bench_wake serve ...   # one instance (what the benchmark starts)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from magiclink_core.testing import PassingNotifier

from ._harness import Section, not_installed, ratio
from ._stores import POSTGRES_DSN, REDIS_URL, Unavailable, open_store
from .bench_http import p99, rss_bytes

TARGET_ONE = 0.020  # seconds: issue 10, target 1, in one process
TARGET_TWO = 0.050  # seconds: issue 10, target 1, across two instances
EMAIL = "ann@example.org"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LINK = re.compile(r"https?://\S+/v1/verify\?token=[\w.~-]+")
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "redis": "Redis"}
ONE_INSTANCE = ("sqlite", "postgres", "redis")
TWO_INSTANCES = ("sqlite", "postgres", "redis")  # SQLite: two processes on one file


# -- placement: cores and file descriptors --------------------------------------------------------


@contextmanager
def pinned(core: int) -> Iterator[None]:
    """This process on one core (of those it may use) for the block, as it was afterwards."""
    before = os.sched_getaffinity(0)
    cores = sorted(before)
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[core % len(cores)]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (never above the hard
    limit, never lowered); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


# -- an instance (a child process) ----------------------------------------------------------------


class Gauge:
    """A count of what the instance holds (waiters, requests), which the load generator can
    wait on instead of sleeping."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Event()

    def add(self, change: int) -> None:
        self.value += change
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, at_least: int, timeout: float) -> int:
        """The count, once it is at least ``at_least`` (or ``timeout`` seconds have passed)."""
        try:
            async with asyncio.timeout(timeout):
                while self.value < at_least:
                    await self._changed.wait()
        except TimeoutError:
            pass
        return self.value


class CountingNotifier(PassingNotifier):
    """The instance's notifier, passed everything, counting the waiters parked on it (a long
    poll held by the server), so the load generator can wait for that moment instead of
    sleeping. The session cache's subscriptions (open while the instance runs) are not counted.
    """

    def __init__(self, inner: Any) -> None:
        from magiclink_core.session_cache import CHANNEL_PREFIX

        super().__init__(inner)
        self.parked = Gauge()
        self._skip = CHANNEL_PREFIX

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Any]:
        if channel.startswith(self._skip):
            return self.inner.subscribe(channel)  # type: ignore[no-any-return]
        return self._counted(channel)

    @asynccontextmanager
    async def _counted(self, channel: str) -> AsyncIterator[Any]:
        async with self.inner.subscribe(channel) as subscription:
            counted = _CountedSubscription(subscription, self)
            try:
                yield counted
            finally:
                if counted.parked:
                    self.count(-1)

    def count(self, change: int) -> None:
        self.parked.add(change)


class _CountedSubscription:
    __slots__ = ("inner", "owner", "parked")

    def __init__(self, inner: Any, owner: CountingNotifier) -> None:
        self.inner, self.owner, self.parked = inner, owner, False

    async def wait(self) -> None:
        if not self.parked:
            self.parked = True
            self.owner.count(1)
        await self.inner.wait()


class CountingStorage:
    """The instance's storage, counting its reads (which an idle waiter must not make)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:  # the rest, as the storage itself has it
        return getattr(self.inner, name)

    async def get(self, *args: Any) -> Any:
        self.reads += 1
        return await self.inner.get(*args)

    async def find(self, *args: Any) -> Any:
        self.reads += 1
        return await self.inner.find(*args)

    async def list(self, *args: Any) -> Any:
        self.reads += 1
        return await self.inner.list(*args)


def instance_storage(kind: str, scope: str) -> Any:
    """A storage object of this instance's own on the benchmark's database file, schema or
    prefix."""
    if kind == "sqlite":
        from magiclink_core.storage import SQLiteStorage

        return SQLiteStorage(scope)
    if kind == "postgres":
        from magiclink_core.storage import PostgresStorage

        return PostgresStorage(POSTGRES_DSN, schema=scope, notify_channel=scope)
    from magiclink_core.storage import RedisStorage

    return RedisStorage(REDIS_URL, prefix=scope)


async def serve(kind: str, scope: str, port: int, poll: float | None) -> None:
    """One instance: the middleware on its own storage object, under uvicorn, accepting far
    more than 1,000 concurrent connections. ``poll``: its ``wait_poll_interval`` in seconds
    (None: the default). Beside magiclink's routes, for the load generator:

    - ``GET /bench/parked?at_least=N``: the waiters parked, once at least N;
    - ``GET /bench/park``: a trivial request held until ``GET /bench/release`` (the floor of a
      long poll), and ``GET /bench/held?at_least=N``, how many are held;
    - ``GET /bench/reads``: the storage reads made so far."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from magiclink_asgi import MagicLinkMiddleware
    from magiclink_core import MagicLinks
    from magiclink_core.mailers import MemoryMailer
    from magiclink_core.storage import MemoryNotifier

    from ._stores import settings

    inner = instance_storage(kind, scope)
    notifier = CountingNotifier(
        inner.notifier() if hasattr(inner, "notifier") else MemoryNotifier()
    )
    storage = CountingStorage(inner)
    polling = {} if poll is None else {"wait_poll_interval": timedelta(seconds=poll)}
    config = settings(base_url=f"http://127.0.0.1:{port}", **polling)
    links = MagicLinks(config, storage=storage, mailer=MemoryMailer(), notifier=notifier)
    held, released = Gauge(), asyncio.Event()

    def at_least(request: Request) -> int:
        return int(request.query_params.get("at_least", "0"))

    async def parked(request: Request) -> JSONResponse:
        return JSONResponse({"parked": await notifier.parked.until(at_least(request), 10)})

    async def park(request: Request) -> PlainTextResponse:
        held.add(1)
        try:
            await released.wait()
        finally:
            held.add(-1)
        return PlainTextResponse("released")

    async def held_now(request: Request) -> JSONResponse:
        return JSONResponse({"held": await held.until(at_least(request), 10)})

    async def release(request: Request) -> PlainTextResponse:
        released.set()
        return PlainTextResponse("released")

    async def reads(request: Request) -> JSONResponse:
        return JSONResponse({"reads": storage.reads})

    app = Starlette(
        routes=[
            Route("/bench/parked", parked),
            Route("/bench/park", park),
            Route("/bench/held", held_now),
            Route("/bench/release", release),
            Route("/bench/reads", reads),
        ],
        middleware=[Middleware(MagicLinkMiddleware, magiclinks=links, pages=False)],
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            limit_concurrency=None,  # uvicorn's default: no limit (a limit answers 503)
            backlog=4096,  # uvicorn's default is 2048; the kernel caps it at somaxconn
            timeout_graceful_shutdown=2,  # long polls still open at the end are cut
        )
    )
    with pinned(0):  # after the imports, which the two instances make on both cores at once
        await server.serve()


@dataclass
class Instance:
    """A child process serving one instance."""

    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def until_listening(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"instance {self.name} exited ({self.process.returncode})")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise RuntimeError(f"instance {self.name} did not start in {seconds:g} s")

    def stop(self) -> None:
        """Ask the instance to shut down (uvicorn's graceful shutdown, at most 2 s)."""
        if self.process.poll() is None:
            self.process.terminate()

    def stopped(self) -> None:
        """Wait until it is gone; kill it if it does not go."""
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_instance(name: str, kind: str, scope: str, poll: float | None) -> Instance:
    from .bench_mail import free_port

    port = free_port()
    command = [sys.executable, "-m", "benchmarks.bench_wake", "serve", kind, scope, str(port)]
    if poll is not None:
        command += ["--poll", f"{poll:g}"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return Instance(name, subprocess.Popen(command, cwd=root), port)


@asynccontextmanager
async def instances(
    kind: str, scope: str, count: int, poll: float | None
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Instances A and B on the database, schema or prefix ``scope``, stopped afterwards; with
    ``count`` 1, A only (given as both)."""
    started: list[Instance] = []
    try:
        for name in ("A", "B")[:count]:
            started.append(start_instance(name, kind, scope, poll))
        for instance in started:
            await instance.until_listening()
        yield started[0], started[-1]
    finally:
        for instance in started:
            instance.stop()
        for instance in started:  # both shut down at once
            instance.stopped()


# -- the floors: the raw drivers, from this process ------------------------------------------------


async def asyncpg_floor(rounds: int, channel: str) -> list[float]:
    """NOTIFY on one asyncpg connection → the LISTEN callback on another, in seconds."""
    import asyncpg

    listener = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    sender = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[float] = loop.create_future()

    def heard(*_: object) -> None:
        if not arrived.done():
            arrived.set_result(time.perf_counter())

    try:
        await listener.add_listener(channel, heard)
        samples = []
        for _ in range(rounds):
            arrived = loop.create_future()
            sent = time.perf_counter()
            await sender.execute("SELECT pg_notify($1, 'x')", channel)
            samples.append(await asyncio.wait_for(arrived, 5) - sent)
        return samples
    finally:
        await listener.close()
        await sender.close()


async def redis_floor(rounds: int, channel: str) -> list[float]:
    """PUBLISH on one redis-py connection → the message read by a subscriber on another."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[float] = loop.create_future()

    async def hear() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message" and not arrived.done():
                arrived.set_result(time.perf_counter())

    await pubsub.subscribe(channel)
    reader = asyncio.create_task(hear())
    try:
        samples = []
        for _ in range(rounds):
            arrived = loop.create_future()
            sent = time.perf_counter()
            await client.publish(channel, "x")
            samples.append(await asyncio.wait_for(arrived, 5) - sent)
        return samples
    finally:
        reader.cancel()
        await pubsub.aclose()
        await client.aclose()


async def unix_datagram_floor(rounds: int, channel: str) -> list[float]:
    """A datagram sent on one Unix socket → read from another's, in seconds: what
    ``SQLiteNotifier`` sends between the processes on one file, without it."""
    import socket
    import tempfile

    import anyio

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "floor.sock")
        listener = await anyio.create_unix_datagram_socket(local_path=path)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        try:
            samples = []
            for _ in range(rounds):
                sent = time.perf_counter()
                sender.sendto(channel.encode(), path)
                with anyio.fail_after(5):
                    await listener.receive()
                samples.append(time.perf_counter() - sent)
            return samples
        finally:
            sender.close()
            await listener.aclose()


# -- the load generator ------------------------------------------------------------------------


@dataclass
class Setup:
    """The core on this process's own storage object: starts each round's sign-in."""

    links: Any
    mailer: Any

    @classmethod
    async def on(cls, storage: Any) -> Setup:
        from magiclink_core import MagicLinks
        from magiclink_core.mailers import MemoryMailer
        from magiclink_core.storage import MemoryNotifier

        from ._stores import settings
        from .bench_middleware import signed_in

        mailer = MemoryMailer()
        # the setup's publishes go nowhere: the instances only wait for the phone's confirm
        links = MagicLinks(settings(), storage=storage, mailer=mailer, notifier=MemoryNotifier())
        await signed_in(links, mailer, EMAIL)  # the account
        return cls(links, mailer)

    async def sign_in(self) -> tuple[str, Any, str, str]:
        """A browser's client token, its sign-in (link emailed), the link's path and the code."""
        client, token = await self.links.create_client()
        sign_in = await self.links.create_sign_in(client, EMAIL)
        sign_in = await self.links.prepare_first_factor(client, sign_in.id, redirect_url="/")
        await self.links.mail_sent()
        message = self.mailer.last_to(EMAIL)
        found = _LINK.search(message.text if message is not None else "")
        if found is None or sign_in.verification is None:
            raise RuntimeError("no link in the sign-in email")
        link = urlsplit(found.group(0))
        return token, sign_in, f"{link.path}?{link.query}", sign_in.verification.confirmation_code

    async def idle_sign_ins(self, n: int) -> list[tuple[str, str]]:
        """``n`` browsers' client tokens, each with a sign-in of its own (not prepared)."""
        made = []
        for i in range(n):
            client, token = await self.links.create_client()
            sign_in = await self.links.create_sign_in(client, f"idle{i}@example.org")
            made.append((token, sign_in.id))
        return made


def _http(base: str, connections: int = 4) -> Any:
    """A browser (or many) for plain HTTP on loopback."""
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=base,
        headers={"origin": base},
        limits=limits,
        timeout=60,
        follow_redirects=False,
        verify=_plain_http(),
    )


@cache
def _plain_http() -> ssl.SSLContext:
    """The TLS context httpx asks for, made once and loading no certificates: every request is
    plain HTTP, and loading the CA bundle costs a quarter of a second per client."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _long_poll(http: Any, token: str, sign_in_id: str, wait: float, version: int | None) -> Any:
    params: dict[str, Any] = {"wait": f"{wait:g}"}
    if version is not None:
        params["version"] = version
    return http.get(
        f"/auth/v1/client/sign_ins/{sign_in_id}",
        params=params,
        headers={"cookie": f"magiclink_client={token}"},
    )


@dataclass
class Bystanders:
    """Idle browsers each holding a long poll on an instance, asking again when answered (a
    wait lasts at most 30 s), until stopped."""

    http: Any
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, sign_ins: list[tuple[str, str]]) -> None:
        self._tasks += [asyncio.create_task(self._hold(*each)) for each in sign_ins]

    async def _hold(self, token: str, sign_in_id: str) -> None:
        while True:
            try:
                response = await _long_poll(self.http, token, sign_in_id, 30, None)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            if response.status_code != 200:
                self.errors.append(f"{response.status_code} {response.text[:200]}")
                return
            self.answered += 1

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()


@dataclass
class Rounds:
    """What the rounds measured (seconds), and what went wrong."""

    wake: list[float] = field(default_factory=list)
    confirm: list[float] = field(default_factory=list)  # the phone's own answer
    not_woken: int = 0
    errors: list[str] = field(default_factory=list)


class Clicks:
    """The browsers of the measured rounds: the desktop's long poll on A, the phone on B (on A
    too, with one instance)."""

    def __init__(self, setup: Setup, a: Instance, b: Instance) -> None:
        self.setup = setup
        self.desktop = _http(a.base)
        self.control = _http(a.base)
        self.phone = _http(b.base)

    async def aclose(self) -> None:
        for http in (self.desktop, self.control, self.phone):
            await http.aclose()

    async def until_parked(self, at_least: int) -> int:
        response = await self.control.get("/bench/parked", params={"at_least": at_least})
        return int(response.json()["parked"])

    async def until_held(self, at_least: int) -> int:
        response = await self.control.get("/bench/held", params={"at_least": at_least})
        return int(response.json()["held"])

    async def reads(self) -> int:
        return int((await self.control.get("/bench/reads")).json()["reads"])

    async def one(self, held: int, into: Rounds) -> None:
        """One round: the phone confirms on B (or A) while A holds the desktop's long poll."""
        token, sign_in, path, code = await self.setup.sign_in()
        self.phone.cookies.clear()
        moved = await self.phone.get(path)
        page = await self.phone.get(moved.headers["location"])
        csrf = _CSRF.search(page.text)
        if csrf is None:
            raise RuntimeError(f"no confirmation page: {page.status_code} {page.text[:200]}")
        poll = asyncio.create_task(self._answer(token, sign_in.id, sign_in.version))
        try:
            await self._confirm_while_held(poll, held, code, csrf.group(1), into)
        finally:
            poll.cancel()  # a round cut short leaves no long poll behind to count as held

    async def _confirm_while_held(
        self, poll: asyncio.Task[tuple[float, str]], held: int, code: str, csrf: str, into: Rounds
    ) -> None:
        """Once A holds the desktop's long poll, the phone's confirm, timed."""
        if await self.until_parked(held + 1) < held + 1:
            raise RuntimeError("instance A did not hold the long poll within 10 s")
        sent = time.perf_counter()
        done = await self.phone.post(
            "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": csrf}
        )
        confirmed = time.perf_counter()
        answered, status = await poll
        # the form answers with a redirect to the done page (Post/Redirect/Get), which the
        # phone's browser would then load: the confirm's own answer is that redirect
        if done.status_code != 303 or done.headers.get("location") != "/auth/v1/verify/confirm":
            raise RuntimeError(f"the phone's confirm: {done.status_code} {done.text[:200]}")
        if status != "complete":
            into.not_woken += 1  # the wait ran out: no notification woke it
        into.wake.append(answered - sent)
        into.confirm.append(confirmed - sent)

    async def _answer(self, token: str, sign_in_id: str, version: int) -> tuple[float, str]:
        """When the desktop's long poll was answered, and the sign-in's status it carried."""
        response = await _long_poll(self.desktop, token, sign_in_id, 20, version)
        at = time.perf_counter()
        if response.status_code != 200:
            return at, f"HTTP {response.status_code}"
        return at, str(response.json().get("status"))

    async def rounds(self, n: int, held: int, warm_up: int = 3) -> Rounds:
        measured = Rounds()
        for i in range(warm_up + n):
            into = measured if i >= warm_up else Rounds()
            try:
                await self.one(held, into)
            except Exception as exc:
                measured.errors.append(f"{type(exc).__name__}: {exc}")
        return measured


async def bystanders_on(
    setup: Setup, instance: Instance, n: int, clicks: Clicks, batch: int = 50
) -> Bystanders:
    """``n`` idle long polls held by ``instance``, started ``batch`` at a time (a crowd of
    browsers arriving at once is not what this measures); returns once it holds them all."""
    sign_ins = await setup.idle_sign_ins(n)
    held = Bystanders(_http(instance.base, connections=n + 16))
    for start in range(0, n, batch):
        held.start(sign_ins[start : start + batch])
        wanted = min(n, start + batch)
        parked = await clicks.until_parked(wanted)
        if parked < wanted:
            await held.stop()
            raise RuntimeError(
                f"instance A holds {parked} of {wanted} idle long polls {held.errors[:3]}"
            )
    return held


class ParkedRequests:
    """Trivial requests held by an instance (``GET /bench/park``) until released: the floor a
    held long poll is measured against."""

    def __init__(self, instance: Instance, n: int) -> None:
        self.http = _http(instance.base, connections=n + 16)
        self.tasks: list[asyncio.Task[Any]] = []

    async def hold(self, n: int, clicks: Clicks, batch: int = 50) -> None:
        """Hold ``n``, ``batch`` at a time, as the long polls are; return once all are held."""
        for start in range(0, n, batch):
            wanted = min(n, start + batch)
            self.tasks += [
                asyncio.create_task(self.http.get("/bench/park")) for _ in range(wanted - start)
            ]
            held = await clicks.until_held(wanted)
            if held < wanted:
                raise RuntimeError(f"instance A holds {held} of {wanted} parked requests")

    async def release(self, clicks: Clicks) -> None:
        """Answer them all, and return once they are answered."""
        await clicks.control.get("/bench/release")
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()


def loop_cpu(pid: int) -> float:
    """CPU seconds of process ``pid``'s main thread (its event loop) so far, from the scheduler's
    own count in nanoseconds (``/proc/<pid>/task/<pid>/schedstat``; ``/proc/<pid>/stat`` counts
    whole clock ticks, too coarse for an idle second)."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as stat:
        return int(stat.read().split()[0]) / 1e9


@dataclass
class Idle:
    """An instance left alone for a while, holding requests: its event loop's CPU (seconds)
    and the storage reads it made meanwhile, and its resident memory before."""

    cpu: float
    reads: int
    rss: int


async def idle_window(instance: Instance, clicks: Clicks, seconds: float, windows: int) -> Idle:
    """Nothing is sent to ``instance`` for ``windows`` windows of ``seconds`` in a row: its
    event loop's CPU in the quietest window, the storage reads in all of them. (A window can
    catch the tail of what came before it, a thousand connections set up or torn down, or a
    collection of the garbage they left: one window alone measured 8 to 21 ms for the same
    parked requests.)"""
    pid = instance.process.pid
    rss = rss_bytes(pid)
    reads = await clicks.reads()
    quietest = float("inf")
    for _ in range(windows):
        cpu = loop_cpu(pid)
        await asyncio.sleep(seconds)  # the window itself: the instance is left alone
        quietest = min(quietest, loop_cpu(pid) - cpu)
    return Idle(quietest, await clicks.reads() - reads, rss)


@dataclass
class IdleCosts:
    """One instance holding ``n`` requests idle: parked trivial ones (its resident memory
    before them in ``empty_rss``), then long polls (held on top of them when ``polls.rss`` is
    read, alone during their window)."""

    n: int
    seconds: float
    windows: int
    empty_rss: int
    trivial: Idle
    polls: Idle

    @property
    def trivial_bytes(self) -> float:
        return (self.trivial.rss - self.empty_rss) / self.n

    @property
    def poll_bytes(self) -> float:
        return (self.polls.rss - self.trivial.rss) / self.n


@dataclass
class Measured:
    """One storage's figures: the floor (across two instances), the rounds alone and with
    bystanders, and (one instance) what idle requests cost it."""

    instances: int
    floor: list[float]
    alone: Rounds
    crowded: Rounds
    bystanders: int
    repolled: int
    idle: IdleCosts | None = None


FLOORS: dict[str, Callable[[int, str], Awaitable[list[float]]]] = {
    "sqlite": unix_datagram_floor,
    "postgres": asyncpg_floor,
    "redis": redis_floor,
}


async def measure(
    kind: str, count: int, rounds: int, bystanders: int, window: float, windows: int
) -> Measured:
    """The rounds on ``count`` instances (1 or 2) of storage ``kind``; with one instance (which
    keeps the default ``wait_poll_interval``), also what ``bystanders`` idle requests cost it
    in the quietest of ``windows`` windows of ``window`` seconds.

    :raises Unavailable: the storage's server or driver is not there."""
    async with open_store(kind) as storage:
        # what the instances open: the same database file, schema or key prefix
        scope = getattr(storage, {"sqlite": "path", "postgres": "schema", "redis": "prefix"}[kind])
        setup = await Setup.on(storage)
        floor = await FLOORS[kind](rounds, f"{scope}floor") if count == 2 else []
        # across instances only a notification may wake A's waiters: A polls once a minute
        async with instances(kind, scope, count, poll=None if count == 1 else 60) as (a, b):
            clicks = Clicks(setup, a, b)
            idle: IdleCosts | None = None
            try:
                alone = await clicks.rounds(rounds, held=0)
                if count == 1:
                    empty = rss_bytes(a.process.pid)
                    parked = ParkedRequests(a, bystanders)
                    try:
                        await parked.hold(bystanders, clicks)
                        trivial = await idle_window(a, clicks, window, windows)
                        crowd = await bystanders_on(setup, a, bystanders, clicks)
                    finally:
                        await parked.release(clicks)
                    polls = await idle_window(a, clicks, window, windows)
                    idle = IdleCosts(bystanders, window, windows, empty, trivial, polls)
                else:
                    crowd = await bystanders_on(setup, a, bystanders, clicks)
                before = crowd.answered
                try:
                    crowded = await clicks.rounds(rounds, held=bystanders)
                finally:
                    repolled = crowd.answered - before
                    crowded.errors += crowd.errors[:3]
                    await crowd.stop()
            finally:
                await clicks.aclose()
    return Measured(count, floor, alone, crowded, bystanders, repolled, idle)


# -- the section -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def p50_p99(samples: list[float]) -> str:
    return f"p50 {ms(statistics.median(samples))}, p99 {ms(p99(samples))}" if samples else "none"


def report(section: Section, kind: str, result: Measured) -> None:
    name = NAMES[kind]
    one = result.instances == 1
    driver = {
        "sqlite": "a Unix datagram socket → another",
        "postgres": "asyncpg NOTIFY → LISTEN",
        "redis": "redis-py PUBLISH → subscriber",
    }[kind]
    target, limit = ("p99 < 20 ms", TARGET_ONE) if one else ("p99 < 50 ms", TARGET_TWO)
    where = "one instance: confirm on A" if one else "confirm on B"
    for label, rounds in (
        ("alone", result.alone),
        (f"{result.bystanders:,} other long polls held by A", result.crowded),
    ):
        what = f"{name}, {where} → long poll answered on A, {label} ({len(rounds.wake)} rounds)"
        floor = rounds.confirm if one else result.floor
        beside = (
            f"the confirm's own answer: {p50_p99(floor)}" if one else f"{driver}: {p50_p99(floor)}"
        )
        if not rounds.wake:
            section.add(what, "no rounds", beside, "", target, None)
        else:
            worst = p99(rounds.wake)
            section.add(
                what,
                p50_p99(rounds.wake),
                beside,
                f"p99 {worst / p99(floor):.{2 if one else 1}f}× {'it' if one else 'floor'}",
                target,
                worst < limit and not rounds.not_woken and not rounds.errors,
            )
        behind = [w - c for w, c in zip(rounds.wake, rounds.confirm, strict=True)]
        section.note(
            f"{name}, {where}, {label}: the phone's own answer to its confirm "
            f"{p50_p99(rounds.confirm)}; the long poll answered "
            f"{ms(statistics.median(behind)) if behind else '-'} after it (median)"
            + (
                f"; {rounds.not_woken} round(s) not woken (the wait ran out)"
                if rounds.not_woken
                else ""
            )
        )
        for error in rounds.errors[:3]:
            section.note(f"{name}, {where}, {label}: {error}")
    if result.idle is not None:
        idle_rows(section, name, result.idle)
    if result.repolled:
        section.note(
            f"{name}, {where}: {result.repolled} idle long poll(s) ran out (30 s) and asked "
            "again during the rounds"
        )


def idle_rows(section: Section, name: str, idle: IdleCosts) -> None:
    """What ``idle.n`` held long polls cost one instance, beside as many parked trivial
    requests (target 1: while idle, within 2× of them, and no storage reads)."""
    polls, trivial = idle.polls, idle.trivial
    section.add(
        f"{name}, one instance: the event loop's CPU while {idle.n:,} long polls wait "
        f"(the quietest of {idle.windows} × {idle.seconds:g} s, default wait_poll_interval)",
        f"{polls.cpu * 1e3:.2f} ms; {polls.reads} storage reads",
        f"{idle.n:,} parked trivial requests: {trivial.cpu * 1e3:.2f} ms; {trivial.reads} reads",
        ratio(polls.cpu, trivial.cpu, line=2) if trivial.cpu > 0 else "",
        "≤ 2×, no reads",
        polls.cpu <= 2 * trivial.cpu and polls.reads == 0,
    )
    section.add(
        f"{name}, one instance: resident memory per held long poll ({idle.n:,} held)",
        f"{idle.poll_bytes / 1024:.1f} KiB",
        f"a parked trivial request: {idle.trivial_bytes / 1024:.1f} KiB",
        f"{idle.poll_bytes / idle.trivial_bytes:.1f}×" if idle.trivial_bytes > 0 else "",
    )


async def run(quick: bool) -> Section:
    section = Section("Click-to-wake over HTTP, in one instance and across two (target 1)")
    missing = not_installed("httpx", "uvicorn")
    if missing is not None:
        section.add("click-to-wake over HTTP", "skipped", f"{missing} is not installed")
        return section
    rounds, bystanders, window, windows = (5, 20, 0.5, 1) if quick else (100, 1_000, 3.0, 3)
    raise_open_files(4 * bystanders + 1024)
    plan = [(kind, 1) for kind in ONE_INSTANCE] + [(kind, 2) for kind in TWO_INSTANCES]
    with pinned(1):
        for kind, count in plan:
            try:
                result = await measure(kind, count, rounds, bystanders, window, windows)
            except (Unavailable, RuntimeError, OSError) as exc:
                where = "one instance" if count == 1 else "two instances"
                section.add(f"{NAMES[kind]}, {where}", "skipped", str(exc))
                continue
            report(section, kind, result)
    section.note(
        "Each instance is a uvicorn child process, both pinned to one core, the load generator "
        "(httpx) to the other; every instance polls storage once a minute, so only a "
        "notification wakes its waiters; the idle long polls are all held by A, whose notifier "
        "must find the one waiter to wake among them. With one instance the phone's confirm "
        "goes to A as well, whose notifier wakes A's own waiters in-process (PostgreSQL's and "
        "Redis's then tell the other instances through the server, SQLite's through a Unix "
        "socket per process beside the file). The drivers' floors are "
        "measured from the load generator in the same run. The single instance keeps the "
        "default wait_poll_interval (2 s, the fallback of a notifier that is down); its idle "
        "costs are read while nothing is sent to it: the CPU of its event loop's thread "
        "(/proc schedstat) and its storage reads, first with the parked trivial requests held "
        "(a route awaiting an event, through the middleware), then with the long polls alone; "
        "its resident memory grows by each set in turn (the long polls are added while the "
        "parked requests are still held)."
    )
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("kind", choices=list(NAMES))
    parser.add_argument("scope")
    parser.add_argument("port", type=int)
    parser.add_argument("--poll", type=float, default=None, help="wait_poll_interval, seconds")
    args = parser.parse_args()
    raise_open_files(8192)
    asyncio.run(serve(args.kind, args.scope, args.port, args.poll))
