"""Storage round trips of one complete sign-in, step by step, on every storage adapter.

Two counts per step, from the same run:

- calls: the Storage port calls the service makes (get, find, list, apply, increment), counted
  by a wrapper between the service and the adapter (the same on every adapter);
- trips: what those calls cost the adapter. PostgreSQL and Redis: network round trips, counted
  by a TCP proxy in front of the server (a flight of requests that then waits for the server's
  answer counts once, so a pipeline is one trip). SQLite: hops to aiosqlite's worker thread
  (counted by wrapping its private ``Connection._execute``, through which every call passes),
  with the statements run on the event loop's own connection shown after a "+".

Each count is of the third flow of a warm app (pool connected, statements prepared, scripts
loaded). Wake-ups go through an in-process notifier, so only storage traffic is counted.

Run (PostgreSQL and Redis as the test suite finds them; missing ones are skipped):
    python benchmarks/bench_round_trips.py
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from magiclink_core import MagicLinks, Settings, StorageUnavailableError
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Change, R, Storage
from magiclink_core.storage import MemoryNotifier, MemoryStorage

POSTGRES_DSN = os.environ.get(
    "MAGICLINK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAGICLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
STEPS = (
    "create_client",
    "create_sign_in",
    "prepare_first_factor",
    "verify_link",
    "authenticate",
)
_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


class Trips:
    """What an adapter's calls cost, read before and after a step."""

    def __init__(self) -> None:
        self.count = 0
        self.on_loop = 0  # SQLite: statements on the event loop's connection

    def read(self) -> tuple[int, int]:
        return self.count, self.on_loop


class CountingStorage:
    """The Storage port, counting each call by name before passing it on."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def get(self, kind: type[R], id: str) -> R | None:
        self.calls["get"] += 1
        return await self.inner.get(kind, id)

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        self.calls["find"] += 1
        return await self.inner.find(kind, field, value)

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        self.calls["list"] += 1
        return await self.inner.list(kind, field, value)

    async def apply(self, changes: Sequence[Change]) -> None:
        self.calls[f"apply[{len(changes)}]"] += 1
        await self.inner.apply(changes)

    async def increment(
        self, key: str, *, window: timedelta, now: datetime
    ) -> tuple[int, datetime]:
        self.calls["increment"] += 1
        return await self.inner.increment(key, window=window, now=now)

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        return await self.inner.purge(now, limit=limit)

    async def close(self) -> None:
        await self.inner.close()


class CountingProxy:
    """A TCP proxy that counts round trips: client data arriving after the server last spoke
    (or first on a connection) starts a new one."""

    def __init__(self, trips: Trips, host: str, port: int) -> None:
        self.trips = trips
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        answered = [True]

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if answered[0]:
                    self.trips.count += 1
                    answered[0] = False
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                answered[0] = True
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        for pipe in (upstream(), downstream()):
            task = asyncio.ensure_future(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(
        parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}")
    )


# -- the adapters, each with its counter ---------------------------------------------------------


@asynccontextmanager
async def memory() -> AsyncIterator[tuple[Storage, Trips]]:
    yield MemoryStorage(), Trips()


@asynccontextmanager
async def sqlite() -> AsyncIterator[tuple[Storage, Trips]]:
    import aiosqlite

    from magiclink_core.storage import SQLiteStorage

    trips = Trips()
    real_execute = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.count += 1
        return await real_execute(self, fn, *args, **kwargs)

    with tempfile.TemporaryDirectory() as folder:
        store = await SQLiteStorage.open(Path(folder) / "bench.db")
        aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
        reader = store.__dict__.get("_reader")
        if isinstance(reader, sqlite3.Connection):

            def on_loop(statement: str) -> None:
                trips.on_loop += 1

            reader.set_trace_callback(on_loop)
        try:
            yield store, trips
        finally:
            aiosqlite.Connection._execute = real_execute  # type: ignore[method-assign]
            await store.close()


@asynccontextmanager
async def postgres() -> AsyncIterator[tuple[Storage, Trips]]:
    import asyncpg

    from magiclink_core.storage import PostgresStorage

    admin = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    schema = f"ml_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    trips = Trips()
    proxy = CountingProxy(
        trips, urlsplit(POSTGRES_DSN).hostname or "", urlsplit(POSTGRES_DSN).port or 5432
    )
    await proxy.start()
    store = PostgresStorage(_via(POSTGRES_DSN, proxy.port), schema=schema)
    try:
        await store.migrate()
        yield store, trips
    finally:
        await store.close()
        await proxy.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@asynccontextmanager
async def redis() -> AsyncIterator[tuple[Storage, Trips]]:
    import redis.asyncio as aioredis

    from magiclink_core.storage import RedisStorage

    host, port = urlsplit(REDIS_URL).hostname or "", urlsplit(REDIS_URL).port or 6379
    _, probe = await asyncio.open_connection(host, port)  # unreachable: OSError, skipped
    probe.close()
    prefix = f"ml_bench_{uuid.uuid4().hex[:12]}:"
    trips = Trips()
    proxy = CountingProxy(trips, host, port)
    await proxy.start()
    store = RedisStorage(_via(REDIS_URL, proxy.port), prefix=prefix)
    try:
        yield store, trips
    finally:
        await store.close()
        await proxy.close()
        admin = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in admin.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


# -- one sign-in, counted step by step ----------------------------------------------------------


async def count_flow(
    factory: Callable[[], Any],
) -> dict[str, tuple[Counter[str], tuple[int, int]]]:
    async with AsyncExitStack() as stack:
        store, trips = await stack.enter_async_context(factory())
        counting = CountingStorage(store)
        mailer = MemoryMailer()
        links = MagicLinks(
            Settings(
                secret="bench-" + "x" * 40,
                base_url="http://localhost:8000",
                links_per_address=0,
            ),
            storage=counting,
            mailer=mailer,
            notifier=MemoryNotifier(),
        )
        email = "ann@example.org"
        client, _ = await links.create_client()
        sign_up = await links.create_sign_up(client, email)
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        await links.verify_link(_last_token(mailer), client)

        async def sign_in() -> dict[str, tuple[Counter[str], tuple[int, int]]]:
            steps: dict[str, tuple[Counter[str], tuple[int, int]]] = {}

            async def step(name: str, call: Awaitable[Any]) -> Any:
                counting.calls.clear()
                before = trips.read()
                result = await call
                after = trips.read()
                steps[name] = (
                    Counter(counting.calls),
                    (after[0] - before[0], after[1] - before[1]),
                )
                return result

            client, _ = await step("create_client", links.create_client())
            attempt = await step("create_sign_in", links.create_sign_in(client, email))
            await step(
                "prepare_first_factor",
                links.prepare_first_factor(client, attempt.id, redirect_url="/home"),
            )
            result = await step("verify_link", links.verify_link(_last_token(mailer), client))
            await step("authenticate", links.authenticate(result.session_token))
            return steps

        for _ in range(2):  # warm: pool connected, statements prepared, scripts loaded
            await sign_in()
        return await sign_in()


def _last_token(mailer: MemoryMailer) -> str:
    match = _TOKEN.search(mailer.outbox[-1].text)
    if match is None:
        raise RuntimeError("no link in the last email")
    return match.group(1)


def _calls(calls: Counter[str]) -> str:
    return " ".join(f"{name}{'' if n == 1 else f'({n})'}" for name, n in sorted(calls.items()))


async def main() -> None:
    adapters = {"memory": memory, "sqlite": sqlite, "postgres": postgres, "redis": redis}
    results: dict[str, dict[str, tuple[Counter[str], tuple[int, int]]]] = {}
    for name, factory in adapters.items():
        try:
            results[name] = await count_flow(factory)
        except (OSError, ImportError, StorageUnavailableError) as exc:
            print(f"{name}: skipped ({exc})")
    first = next(iter(results.values()))
    print(
        f"{'step':22} {'storage calls (the service)':48} "
        + " ".join(f"{n:>9}" for n in results if n != "memory")
    )
    totals: Counter[str] = Counter()
    for step in STEPS:
        cells = []
        for name, steps in results.items():
            if name == "memory":
                continue
            trips, on_loop = steps[step][1]
            totals[name] += trips
            totals[f"{name}+"] += on_loop
            cells.append(f"{trips}+{on_loop}" if name == "sqlite" else str(trips))
        print(f"{step:22} {_calls(first[step][0]):48} " + " ".join(f"{c:>9}" for c in cells))
    every = sum((steps[0] for steps in first.values()), Counter())
    cells = [
        f"{totals[n]}+{totals[n + '+']}" if n == "sqlite" else str(totals[n])
        for n in results
        if n != "memory"
    ]
    print(f"{'whole sign-in':22} {_calls(every):48} " + " ".join(f"{c:>9}" for c in cells))


async def run(quick: bool) -> Any:
    """This benchmark's printout, as a section of ``python -m benchmarks`` (it counts, so a
    quick run is the same run)."""
    import contextlib
    import io

    from ._harness import Section

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await main()
    result = Section("Storage round trips of one sign-in, step by step (target 5)")
    result.note("```\n" + out.getvalue().rstrip() + "\n```")
    return result


if __name__ == "__main__":
    asyncio.run(main())
