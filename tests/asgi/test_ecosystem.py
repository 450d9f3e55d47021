"""What a developer mounting the middleware relies on: Starlette's auth conventions in every
framework, who is signed in without a read, dead cookies cleared on the app's own responses."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import FRAMEWORKS, Browser, Server, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(params=FRAMEWORKS)
async def server(request: pytest.FixtureRequest) -> Any:
    async with serve(request.param) as running:
        yield running


async def signed_up(server: Server, browser: Browser, email: str) -> None:
    await browser.start_sign_up(email, f"{server.base_url}/welcome")
    landed = await browser.get(server.last_link(email))
    assert landed.status_code == 303


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
async def test_starlettes_requires_works(framework: str) -> None:
    async with serve(framework) as server, server.browser() as browser:
        refused = await browser.get("/requires")
        assert refused.status_code == 403  # Starlette's @requires answers 403 to a stranger
        await signed_up(server, browser, "req@example.com")
        allowed = await browser.get("/requires")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["identity"] == (await browser.whoami())["identity"]


async def test_require_user_answers_401_itself_in_every_framework(server: Server) -> None:
    async with server.browser() as browser:
        assert (await browser.get("/private")).status_code == 401
        await signed_up(server, browser, "priv@example.com")
        assert (await browser.get("/private")).status_code == 200


async def test_the_user_and_credentials_follow_starlettes_convention(server: Server) -> None:
    async with server.browser() as browser:
        out = await browser.whoami()
        assert out["authenticated"] is False and out["scopes"] == []
        await signed_up(server, browser, "who@example.com")
        me = await browser.whoami()
        assert me["authenticated"] is True and me["scopes"] == ["authenticated"]
        assert me["display_name"] == "who@example.com"  # with no storage read of its own


async def test_the_display_name_follows_the_primary_address(server: Server) -> None:
    async with server.browser() as browser:
        await signed_up(server, browser, "home@example.com")
        address = (await browser.add_address("work@example.com"))["id"]
        await browser.address_step(address, "prepare_verification", strategy="email_code")
        code = server.last_code("work@example.com")
        await browser.address_step(address, "attempt_verification", code=code)
        made = await browser.api("PATCH", "/me", json={"primary_email_address_id": address})
        assert made.status_code == 200, made.text
        assert (await browser.whoami())["display_name"] == "work@example.com"


async def test_a_dead_session_cookie_is_cleared_on_the_apps_own_responses(server: Server) -> None:
    async with server.browser() as browser:
        await signed_up(server, browser, "dead@example.com")
        me = await browser.whoami()
        await server.magiclinks.revoke_sessions(me["identity"])
        response = await browser.get("/whoami")
        assert response.json()["authenticated"] is False
        cleared = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
        assert any("magiclink_session=" in c and "Max-Age=0" in c for c in cleared), cleared
        assert "cookie" in response.headers.get("vary", "").lower()
        again = await browser.get("/whoami")  # the browser dropped it: nothing more to clear
        assert not [v for k, v in again.headers.multi_items() if k == "set-cookie"]


async def test_responses_vary_on_cookie_when_the_identity_came_from_one(server: Server) -> None:
    async with server.browser() as browser:
        anonymous = await browser.get("/whoami")
        assert "set-cookie" not in anonymous.headers
        await signed_up(server, browser, "vary@example.com")
        signed_in = await browser.get("/whoami")
        assert "cookie" in signed_in.headers["vary"].lower()
        assert "set-cookie" not in signed_in.headers
