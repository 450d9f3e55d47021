"""Two app instances (two middleware stacks, two uvicorn servers) on one database: a sign-in
started on instance A, its link clicked and confirmed on instance B, and A's waiting tab woken by
the notification (A polls once a minute, so only a notification wakes its 10-second wait), on
PostgreSQL (LISTEN/NOTIFY), on Redis (pub/sub) and on a SQLite file (Unix datagram sockets)."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from tests.core._services import SHARED_STORES, Shared, storages
from tests.support import after_confirm, csrf_token

from .harness import IPHONE, serve

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", SHARED_STORES)
async def test_a_click_on_instance_b_wakes_the_tab_waiting_on_instance_a(kind: Shared) -> None:
    async with (
        storages(kind, count=2) as (store_a, store_b),
        serve("starlette", storage=store_a, wait_poll_interval=timedelta(minutes=1)) as a,
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
            path = f"/client/sign_ins/{sign_in['id']}"
            # held by instance A
            async with a.long_poll(desktop, path, wait=10, version=sign_in["version"]) as answer:
                moved = await phone.get(on_b)
                page = await phone.get(moved.headers["location"])
                csrf = csrf_token(page.text)
                clicked = time.perf_counter()
                done = await phone.post(
                    "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": csrf}
                )
                assert "all set" in (await after_confirm(phone, done)).text
            latency = answer.at - clicked
            print(f"{kind}: the tab on A woke {latency * 1000:.1f} ms after the confirm on B")
            assert answer.json()["status"] == "complete"  # woken, not timed out
            session_id = answer.json()["created_session_id"]
            touched = await desktop.api("POST", f"/client/sessions/{session_id}/touch")
            assert touched.status_code == 200
            assert (await desktop.whoami())["authenticated"] is True
