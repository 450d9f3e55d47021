"""A storage that cannot serve a request in time answers 503 ``storage_unavailable``, never a
500: here a Redis connection pool held busy for longer than its wait, and a SQLite file whose
write lock another process holds (in-process transport)."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from magiclink_core.storage import RedisStorage, SQLiteStorage
from tests.core._services import redis_prefix
from tests.support import REDIS_URL

from .harness import build_app, make_magiclinks

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8000"


@pytest.mark.redis
async def test_a_redis_pool_busy_past_its_wait_answers_503() -> None:
    async with redis_prefix() as prefix:
        store = RedisStorage(
            REDIS_URL, prefix=prefix, max_connections=1, pool_timeout=0.2, command_timeout=30
        )
        magiclinks, _ = make_magiclinks(BASE, storage=store)
        app = build_app("starlette", magiclinks)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app), base_url=BASE, headers={"origin": BASE}
            ) as browser:
                assert (await browser.get("/auth/v1/client")).status_code == 200
                async with anyio.create_task_group() as group:
                    # the pool's one connection, held by a blocking pop
                    group.start_soon(store._client.blpop, [f"{prefix}never"], 20)  # type: ignore[attr-defined]
                    await anyio.wait_all_tasks_blocked()
                    with anyio.fail_after(5):
                        busy = await browser.get("/auth/v1/client")
                    group.cancel_scope.cancel()
                assert busy.status_code == 503, busy.text
                assert busy.json()["errors"][0]["code"] == "storage_unavailable"
                assert (await browser.get("/auth/v1/client")).status_code == 200
        finally:
            await magiclinks.aclose()


async def test_a_sqlite_file_another_process_holds_answers_503_at_the_storage_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path, busy_timeout=timedelta(seconds=30))
    magiclinks, _ = make_magiclinks(
        BASE, storage=store, storage_timeout=timedelta(milliseconds=300)
    )
    app = build_app("starlette", magiclinks)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url=BASE, headers={"origin": BASE}
        ) as browser:
            other.execute("BEGIN IMMEDIATE")  # a VACUUM, a stuck writer: the write lock held
            started = time.monotonic()
            busy = await browser.get("/auth/v1/client")  # a new browser: its client written
            assert time.monotonic() - started < 5  # a hang's bound: busy_timeout is 30 s
            assert busy.status_code == 503, busy.text
            assert busy.json()["errors"][0]["code"] == "storage_unavailable"
            assert int(busy.headers["retry-after"]) > 0
            other.execute("ROLLBACK")
            assert (await browser.get("/auth/v1/client")).status_code == 200
    finally:
        other.close()
        await magiclinks.aclose()
