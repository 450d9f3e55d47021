"""The whole flows through the middleware once per storage adapter (memory, SQLite, PostgreSQL,
Redis), over real HTTP: what an app on each backend relies on. Starlette only: the framework
matrix is covered in test_middleware_flows.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from magiclink_core import Storage
from magiclink_core.storage import MemoryStorage
from tests.core._services import SERVERS, storages
from tests.support import after_confirm, csrf_token

from .harness import IPHONE, serve

pytestmark = pytest.mark.anyio
ADAPTERS = ["memory", "sqlite", *SERVERS]


@asynccontextmanager
async def storage_for(kind: str, tmp_path: Path) -> AsyncIterator[Storage]:
    if kind == "memory":
        yield MemoryStorage()
    elif kind == "sqlite":
        from magiclink_core.storage import SQLiteStorage

        store = SQLiteStorage(str(tmp_path / "auth.sqlite3"))
        try:
            yield store
        finally:
            await store.close()
    else:
        async with storages(kind) as (store,):
            yield store


@pytest.fixture(params=ADAPTERS)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with (
        storage_for(request.param, tmp_path) as store,
        serve("starlette", storage=store) as s,
    ):
        yield s


def status_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_sign_up_sign_in_on_another_device_and_email_verification(server: Any) -> None:
    async with server.browser() as laptop:
        await laptop.start_sign_up("ann@example.com", f"{server.base_url}/welcome")
        landed = await laptop.get(server.last_link("ann@example.com"))
        assert status_of(landed.headers["location"])["__magiclink_status"] == "verified"
        assert (await laptop.whoami())["authenticated"] is True

        # a second email address, verified from the same browser
        added = await laptop.add_address("work@example.com")
        redirect_url = f"{server.base_url}/p"
        await laptop.address_step(
            added["id"], "prepare_verification", strategy="email_link", redirect_url=redirect_url
        )
        await laptop.get(server.last_link("work@example.com"))
        address = (await laptop.api("GET", f"/me/email_addresses/{added['id']}")).json()
        assert address["verified"] is True

    async with server.browser() as desktop, server.browser(user_agent=IPHONE) as phone:
        sign_in = await desktop.start_sign_in("work@example.com", f"{server.base_url}/home")
        code = sign_in["first_factor_verification"]["confirmation_code"]
        path = f"/client/sign_ins/{sign_in['id']}"
        async with server.long_poll(desktop, path, wait=10, version=sign_in["version"]) as answer:
            moved = await phone.get(server.last_link("work@example.com"))
            assert moved.headers["location"] == "/auth/v1/verify/confirm"
            page = await phone.get(moved.headers["location"])
            csrf = csrf_token(page.text)
            done = await phone.post(
                "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": csrf}
            )
            assert "all set" in (await after_confirm(phone, done)).text
        finished = answer.json()
        assert finished["status"] == "complete"
        touched = await desktop.api(
            "POST", f"/client/sessions/{finished['created_session_id']}/touch"
        )
        assert touched.status_code == 200
        me = await desktop.whoami()
        assert me["authenticated"] is True and me["session"] == finished["created_session_id"]
        assert (await phone.whoami())["authenticated"] is False
