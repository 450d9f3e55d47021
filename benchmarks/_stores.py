"""Each storage adapter, fresh and empty, for a benchmark: PostgreSQL in a schema of its own and
Redis under a key prefix of its own (both removed afterwards), SQLite in a temporary folder.

PostgreSQL and Redis are found as the test suite finds them (``MAGICLINK_TEST_POSTGRES_DSN``,
``MAGICLINK_TEST_REDIS_URL``); one that cannot be reached raises :class:`Unavailable`, and the
benchmark says so in its row instead of a figure.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from magiclink_core import MagicLinks, Settings, Storage
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage

POSTGRES_DSN = os.environ.get(
    "MAGICLINK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAGICLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
STORES = ("memory", "sqlite", "postgres", "redis")
SECRET = "benchmark-secret-" + "x" * 40
BASE_URL = "http://localhost:8000"


class Unavailable(Exception):
    """The storage's server or driver is not there."""


def settings(**overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "secret": SECRET,
        "base_url": BASE_URL,
        "links_per_address": 0,
        "email_code_failures_per_address": 0,
        "email_code_failures_per_ip": 0,
        # every flow of the load generator comes from 127.0.0.1: the per-IP budgets (which a
        # benchmark is not about) would refuse all but the first few dozen
        "attempts_per_ip": 0,
        "links_per_ip": 0,
        "confirmation_code_failures_per_ip": 0,
    }
    options.update(overrides)
    return Settings(**options)


def magiclinks(storage: Storage, **overrides: Any) -> tuple[MagicLinks, MemoryMailer]:
    mailer = MemoryMailer()
    return MagicLinks(settings(**overrides), storage=storage, mailer=mailer), mailer


@asynccontextmanager
async def open_store(name: str, **options: Any) -> AsyncIterator[Storage]:
    """A fresh storage of kind ``name``; :raises Unavailable: its server or driver is not."""
    if name == "memory":
        yield MemoryStorage()
    elif name == "sqlite":
        async with _sqlite(**options) as store:
            yield store
    elif name == "postgres":
        async with _postgres(**options) as store:
            yield store
    elif name == "redis":
        async with _redis(**options) as store:
            yield store
    else:
        raise ValueError(name)


@asynccontextmanager
async def _sqlite(**options: Any) -> AsyncIterator[Storage]:
    try:
        from magiclink_core.storage import SQLiteStorage

        with tempfile.TemporaryDirectory() as folder:
            store = await SQLiteStorage.open(Path(folder) / "bench.db", **options)
            try:
                yield store
            finally:
                await store.close()
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc


@asynccontextmanager
async def _postgres(**options: Any) -> AsyncIterator[Storage]:
    try:
        import asyncpg

        from magiclink_core.storage import PostgresStorage
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    try:
        admin = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"PostgreSQL at {POSTGRES_DSN}: {exc}") from exc
    schema = f"ml_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStorage(POSTGRES_DSN, schema=schema, **options)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@asynccontextmanager
async def _redis(**options: Any) -> AsyncIterator[Storage]:
    try:
        import redis.asyncio as aioredis

        from magiclink_core.storage import RedisStorage
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        await admin.ping()
    except (OSError, aioredis.RedisError) as exc:
        await admin.aclose()
        raise Unavailable(f"Redis at {REDIS_URL}: {exc}") from exc
    prefix = f"ml_bench_{uuid.uuid4().hex[:12]}:"
    store = RedisStorage(REDIS_URL, prefix=prefix, **options)
    try:
        yield store
    finally:
        await store.close()
        keys = [key async for key in admin.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def server_versions() -> dict[str, str | None]:
    """The versions of the PostgreSQL and Redis servers the benchmarks use."""
    versions: dict[str, str | None] = {"PostgreSQL": None, "Redis": None, "SQLite": None}
    try:
        import sqlite3

        versions["SQLite"] = f"{sqlite3.sqlite_version} (the library Python links)"
    except ImportError:
        pass
    try:
        import asyncpg

        connection = await asyncpg.connect(POSTGRES_DSN, timeout=3)
        versions["PostgreSQL"] = await connection.fetchval("SHOW server_version")
        await connection.close()
    except Exception:
        pass
    try:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        versions["Redis"] = (await client.info("server"))["redis_version"]
        await client.aclose()
    except Exception:
        pass
    return versions
