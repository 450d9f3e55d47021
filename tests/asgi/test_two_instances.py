"""Two app instances (two middleware stacks, two uvicorn servers) on one database: a sign-in
started on instance A, its link clicked and confirmed on instance B, and A's waiting tab woken
within 200 ms, on PostgreSQL (LISTEN/NOTIFY) and on Redis (pub/sub)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from magiclink_core import Storage
from tests.core._services import postgres_schema, redis_prefix
from tests.support import POSTGRES_DSN, REDIS_URL, csrf_token

from .harness import IPHONE, serve

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_storages(kind: str) -> AsyncIterator[tuple[Storage, Storage]]:
    async with AsyncExitStack() as stack:
        if kind == "postgres":
            from magiclink_core.storage import PostgresStorage

            schema = await stack.enter_async_context(postgres_schema())
            a = PostgresStorage(POSTGRES_DSN, schema=schema, notify_channel=schema)
            b = PostgresStorage(POSTGRES_DSN, schema=schema, notify_channel=schema)
            await a.migrate()
        else:
            from magiclink_core.storage import RedisStorage

            prefix = await stack.enter_async_context(redis_prefix())
            a = RedisStorage(REDIS_URL, prefix=prefix)
            b = RedisStorage(REDIS_URL, prefix=prefix)
        stack.push_async_callback(a.close)
        stack.push_async_callback(b.close)
        yield a, b


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_a_click_on_instance_b_wakes_the_tab_waiting_on_instance_a(kind: str) -> None:
    async with (
        two_storages(kind) as (store_a, store_b),
        serve("starlette", storage=store_a) as a,
        serve("starlette", storage=store_b) as b,
    ):
        # account made on B, sign-in started on A
        async with b.browser() as first:
            await first.start_sign_up("ann@example.com", f"{b.base_url}/welcome")
            await first.get(b.last_link("ann@example.com"))
        async with a.browser() as desktop, b.browser(user_agent=IPHONE) as phone:
            sign_in = await desktop.start_sign_in("ann@example.com", f"{a.base_url}/home")
            code = sign_in["first_factor_verification"]["confirmation_code"]
            link = urlsplit(a.last_link("ann@example.com"))
            on_b = f"{link.path}?{link.query}"  # the same link, served by instance B
            woke: dict[str, Any] = {}

            async def wait_on_a() -> None:
                answer = await desktop.api(
                    "GET",
                    f"/client/sign_ins/{sign_in['id']}",
                    params={"wait": "10", "version": str(sign_in["version"])},
                )
                woke["at"] = time.perf_counter()
                woke["sign_in"] = answer.json()

            async with anyio.create_task_group() as group:
                group.start_soon(wait_on_a)
                await a.notifier.until_waiting()  # held by instance A
                moved = await phone.get(on_b)
                page = await phone.get(moved.headers["location"])
                csrf = csrf_token(page.text)
                clicked = time.perf_counter()
                done = await phone.post(
                    "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": csrf}
                )
                assert done.status_code == 200
            latency = woke["at"] - clicked
            print(f"{kind}: the tab on A woke {latency * 1000:.1f} ms after the confirm on B")
            assert woke["sign_in"]["status"] == "complete"
            assert latency < 0.2
            session_id = woke["sign_in"]["created_session_id"]
            touched = await desktop.api("POST", f"/client/sessions/{session_id}/touch")
            assert touched.status_code == 200
            assert (await desktop.whoami())["authenticated"] is True
