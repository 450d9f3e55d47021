"""A storage that cannot serve a request in time answers 503 ``storage_unavailable``, never a
500: here a Redis connection pool held busy for longer than its wait (in-process transport)."""

from __future__ import annotations

import anyio
import httpx
import pytest

from magiclink_core.storage import RedisStorage
from tests.core._services import redis_prefix
from tests.support import REDIS_URL

from .harness import build_app, make_magiclinks

pytestmark = [pytest.mark.anyio, pytest.mark.redis]
BASE = "http://127.0.0.1:8000"


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
