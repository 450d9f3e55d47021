"""Helpers for the tests that need a real PostgreSQL or Redis: per-test isolation (a fresh schema,
a fresh key prefix), storages and notifiers of either kind on it (or several SQLite storages on
one file, for the tests of instances sharing a store), and a TCP proxy the fault tests can cut and
restore."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import pytest

from magiclink_core.ports import Notifier, Storage
from magiclink_core.storage import (
    PostgresNotifier,
    PostgresStorage,
    RedisNotifier,
    RedisStorage,
    SQLiteStorage,
)
from magiclink_core.testing import NotifierContract, Outage, StorageContract
from tests.support import POSTGRES_DSN, REDIS_URL, service_missing

from ._support import CounterReads

Server = Literal["postgres", "redis"]
# parametrize a test or fixture over both servers, each test marked with the one it needs
SERVERS = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]
Shared = Literal["postgres", "redis", "sqlite"]
# the stores several app instances share, with wake-ups between them: the servers, and a SQLite
# file (its instances are processes of one machine; here, storage objects of one process)
SHARED_STORES = [*SERVERS, pytest.param("sqlite")]


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty schema, dropped afterwards (skips when PostgreSQL is not there)."""
    import asyncpg

    try:
        admin = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        service_missing("PostgreSQL", f"{POSTGRES_DSN}: {exc}")
        raise  # unreachable: service_missing skips or fails
    name = f"ml_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.close()


@contextlib.asynccontextmanager
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix, its keys deleted afterwards (skips when Redis is not there)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        await client.aclose()
        service_missing("Redis", f"{REDIS_URL}: {exc}")
        raise
    prefix = f"ml_test_{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def server_url(kind: Server) -> str:
    return POSTGRES_DSN if kind == "postgres" else REDIS_URL


def isolated(kind: Server) -> contextlib.AbstractAsyncContextManager[str]:
    """A fresh schema (PostgreSQL) or key prefix (Redis), cleaned up afterwards."""
    return postgres_schema() if kind == "postgres" else redis_prefix()


def storage_at(
    kind: Server, url: str, scope: str, **options: Any
) -> PostgresStorage | RedisStorage:
    """A storage on the server at ``url``, in the schema or under the prefix ``scope``."""
    if kind == "postgres":
        return PostgresStorage(url, schema=scope, notify_channel=scope, **options)
    return RedisStorage(url, prefix=scope, **options)


def notifier_at(kind: Server, url: str, scope: str, **options: Any) -> Notifier:
    """A notifier on the server at ``url``, on the channel of the schema or prefix ``scope``
    (the one the storages of :func:`storage_at` use)."""
    if kind == "postgres":
        return PostgresNotifier(url, channel=scope, **options)
    return RedisNotifier(url, channel=f"{scope}notify", **options)


@contextlib.asynccontextmanager
async def storages(
    kind: Shared, count: int = 1
) -> AsyncIterator[list[PostgresStorage | RedisStorage | SQLiteStorage]]:
    """``count`` storage objects (as many app instances) on one fresh schema or prefix, or one
    fresh SQLite file, migrated; closed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "shared.db")
            async with contextlib.AsyncExitStack() as stack:
                files = [SQLiteStorage(path) for _ in range(count)]
                for store in files:
                    stack.push_async_callback(store.close)
                await files[0].migrate()
                yield list(files)
        return
    async with isolated(kind) as scope, contextlib.AsyncExitStack() as stack:
        opened = [storage_at(kind, server_url(kind), scope) for _ in range(count)]
        for store in opened:
            stack.push_async_callback(store.close)
        await opened[0].migrate()
        yield opened


def with_port(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port`` (keeping user, database and options)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def target_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 0


class Proxy:
    """A TCP proxy to a server, which a test can cut (refuse and drop every connection) and
    restore on the same port: the database "goes away" and "comes back"."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.sent = 0
        """Reads of what clients sent on to the server: one per round trip of a driver that
        sends a request and waits for its answer (messages far under 64 KiB)."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        """Keep connections open but forward nothing: a server that stops answering."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def restore(self) -> None:
        """Accept connections again, on the same port, after :meth:`cut`."""
        await self.start()

    async def cut(self) -> None:
        """Stop accepting and drop every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # dropped before waiting: since Python 3.12 wait_closed() waits for every connection
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        if server is not None:
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool
        ) -> None:
            try:
                while data := await src.read(65536):
                    self.sent += upstream
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        self._pipes.difference_update((writer, up_writer))


class ServerStorageContract(StorageContract, CounterReads):
    """The storage contract on a real server (``server``), each test on a fresh, migrated
    schema or prefix."""

    server: ClassVar[Server]

    @pytest.fixture
    async def storage(self) -> AsyncIterator[Storage]:
        async with storages(self.server) as [store]:
            yield store


class ProxiedNotifierContract(NotifierContract):
    """The notifier contract on a real server (``server``), in a fresh schema or prefix: instance
    one reaches the server through a proxy the suite cuts; instance two is a storage's own
    notifier."""

    server: ClassVar[Server]

    @pytest.fixture
    async def proxy(self) -> AsyncIterator[Proxy]:
        proxy = Proxy(*target_of(server_url(self.server)))
        await proxy.start()
        yield proxy
        await proxy.cut()

    @pytest.fixture
    async def notifiers(self, proxy: Proxy) -> AsyncIterator[tuple[Notifier, Notifier]]:
        url = server_url(self.server)
        async with isolated(self.server) as scope:
            here = notifier_at(self.server, with_port(url, proxy.port), scope, connect_timeout=2)
            store = storage_at(self.server, url, scope)
            yield here, store.notifier()
            await here.close()
            await store.close()  # and the notifier it handed out

    @pytest.fixture
    def outage(self, proxy: Proxy) -> Outage:
        return proxy
