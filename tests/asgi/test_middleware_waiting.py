"""Long-polling under load, over real HTTP: many waiters held and woken, disconnects honoured."""

import time
from typing import Any

import anyio
import httpx
import pytest

from .harness import serve

pytestmark = pytest.mark.anyio
WAITERS = 200


async def test_200_concurrent_waiters_are_held_then_woken_or_timed_out() -> None:
    async with serve("starlette") as server:
        limits = httpx.Limits(max_connections=WAITERS + 20, max_keepalive_connections=WAITERS + 20)
        async with server.browser(limits=limits) as browser:
            sign_in_email = "many@example.com"
            await browser.start_sign_up(sign_in_email, f"{server.base_url}/")
            client = (await browser.api("GET", "/client")).json()
            sign_up = client["sign_up"]
            statuses: list[int] = []
            answers: list[dict[str, Any]] = []
            timed_out: list[dict[str, Any]] = []
            short_ones_done = anyio.Event()

            async def waiter(path: str, into: list[dict[str, Any]]) -> None:
                response = await browser.api("GET", path)
                statuses.append(response.status_code)
                into.append(response.json())
                if len(timed_out) == 20:
                    short_ones_done.set()

            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    started = time.perf_counter()
                    for _ in range(WAITERS):
                        group.start_soon(
                            waiter,
                            f"/client/sign_ups/{sign_up['id']}?wait=15&version={sign_up['version']}",
                            answers,
                        )
                    for _ in range(20):  # a few short waits that simply run out
                        group.start_soon(
                            waiter, f"/client/sign_ups/{sign_up['id']}?wait=0.5", timed_out
                        )
                    await short_ones_done.wait()  # the short waits run out...
                    print(f"20 short waits ran out after {time.perf_counter() - started:.2f} s")
                    assert not answers  # ...while the long ones hold
                    await server.notifier.until_waiting(WAITERS)  # every long one is held
                    landed = await browser.get(server.last_link(sign_in_email))
                    assert landed.status_code == 303
        assert statuses == [200] * (WAITERS + 20)
        assert all(a["status"] == "complete" for a in answers) and len(answers) == WAITERS
        assert all(a["status"] == "missing_requirements" for a in timed_out)


async def test_a_wait_ends_when_the_http_client_disconnects() -> None:
    async with serve("starlette") as server, server.browser() as browser:
        started = await browser.start_sign_up("gone@example.com", f"{server.base_url}/")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(browser.api, "GET", f"/client/sign_ups/{started['id']}?wait=25")
                await server.notifier.until_waiting()  # held by the server
                group.cancel_scope.cancel()  # the HTTP client goes away
            # the server notices the closed connection and drops the subscription
            await server.notifier.until_idle()
