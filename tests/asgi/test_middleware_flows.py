"""The whole flows through Starlette, FastAPI and Quart apps over real HTTP (uvicorn)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from magiclink_core.testing import FakeClock
from tests.support import after_confirm, csrf_token

from .harness import FRAMEWORKS, IPHONE, Browser, Server, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(params=FRAMEWORKS)
async def server(request: pytest.FixtureRequest) -> Any:
    async with serve(request.param) as running:
        yield running


def landing_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert "token=" not in location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def sign_up(server: Server, browser: Browser, email: str) -> dict[str, str]:
    await browser.start_sign_up(email, f"{server.base_url}/welcome")
    return landing_params(await browser.get(server.last_link(email)))


async def has_account(server: Server, email: str) -> None:
    """An account for ``email``, signed up in a browser of its own that is then closed."""
    async with server.browser() as first:
        await sign_up(server, first, email)


async def test_sign_up_in_the_same_tab(server: Server) -> None:
    async with server.browser() as tab:
        assert (await tab.whoami())["authenticated"] is False
        params = await sign_up(server, tab, "new@example.com")
        assert params["__magiclink_status"] == "verified"
        session_id = params["__magiclink_created_session"]
        me = await tab.whoami()
        assert me["authenticated"] is True and me["session"] == session_id
        user = (await tab.api("GET", "/me")).json()
        assert user["object"] == "user" and me["identity"] == user["id"]
        assert user["email_addresses"][0]["email_address"] == "new@example.com"
        assert (await tab.get("/private")).json() == {"identity": user["id"]}
        client = (await tab.api("GET", "/client")).json()
        assert client["last_active_session_id"] == session_id
        assert client["sign_up"]["status"] == "complete"


async def test_sign_in_from_another_tab_of_the_same_browser(server: Server) -> None:
    await has_account(server, "tabs@example.com")
    async with server.browser() as browser:
        sign_in = await browser.start_sign_in("tabs@example.com", f"{server.base_url}/home")
        path = f"/client/sign_ins/{sign_in['id']}"
        async with server.long_poll(browser, path, wait=10, version=sign_in["version"]) as answer:
            # the other tab shares the cookie jar: same client
            params = landing_params(await browser.get(server.last_link("tabs@example.com")))
        assert params["__magiclink_status"] == "verified"
        waited = answer.json()
        assert waited["status"] == "complete"
        assert waited["first_factor_verification"]["verified_from_the_same_client"] is True
        assert waited["created_session_id"] == params["__magiclink_created_session"]
        assert (await browser.whoami())["authenticated"] is True


async def test_sign_in_from_another_device_with_the_code(server: Server) -> None:
    await has_account(server, "devices@example.com")
    async with server.browser() as laptop, server.browser(user_agent=IPHONE) as phone:
        sign_in = await laptop.start_sign_in("devices@example.com", f"{server.base_url}/home")
        code = sign_in["first_factor_verification"]["confirmation_code"]
        link = server.last_link("devices@example.com")

        clicked = await phone.get(link)
        assert clicked.status_code == 303
        assert clicked.headers["location"] == "/auth/v1/verify/confirm"
        page = await phone.get(clicked.headers["location"])
        assert page.status_code == 200
        assert 'autocomplete="one-time-code"' in page.text
        assert "Firefox 120 on Ubuntu" in page.text and "127.0.0.1" in page.text
        csrf = csrf_token(page.text)

        wrong = await phone.post(
            "/auth/v1/verify/confirm",
            data={
                "confirmation_code": "000000" if code != "000000" else "111111",
                "csrf_token": csrf,
            },
        )
        again = await after_confirm(phone, wrong, retry="wrong")
        assert again.status_code == 200 and "2 tries left" in again.text

        async with server.long_poll(laptop, f"/client/sign_ins/{sign_in['id']}", wait=10) as answer:
            done = await phone.post(
                "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": csrf}
            )
        assert "all set" in (await after_confirm(phone, done)).text
        waited = answer.json()
        assert waited["status"] == "complete"
        assert waited["first_factor_verification"]["verified_from_the_same_client"] is False
        assert (await phone.whoami())["authenticated"] is False
        assert (await laptop.whoami())["authenticated"] is False
        touched = await laptop.api("POST", f"/client/sessions/{waited['created_session_id']}/touch")
        assert touched.status_code == 200, touched.text
        me = await laptop.whoami()
        assert me["authenticated"] is True and me["session"] == waited["created_session_id"]
        ended = await laptop.api("POST", f"/client/sessions/{me['session']}/end")
        assert ended.json()["status"] == "ended"
        assert (await laptop.whoami())["authenticated"] is False


async def test_email_verification(server: Server) -> None:
    async with server.browser() as tab:
        await sign_up(server, tab, "first@example.com")
        added = await tab.add_address("2@example.com")
        assert added["verified"] is False
        address_id = added["id"]
        prepared = await tab.address_step(
            address_id,
            "prepare_verification",
            strategy="email_link",
            redirect_url=f"{server.base_url}/profile",
        )
        assert prepared.status_code == 200, prepared.text
        async with server.long_poll(tab, f"/me/email_addresses/{address_id}", wait=10) as answer:
            params = landing_params(await tab.get(server.last_link("2@example.com")))
        assert params == {"__magiclink_status": "verified"}
        assert answer.json()["verified"] is True
        made_primary = await tab.api("PATCH", "/me", json={"primary_email_address_id": address_id})
        assert made_primary.json()["primary_email_address_id"] == address_id
        sessions = (await tab.api("GET", "/me/sessions")).json()
        assert sessions["object"] == "list" and sessions["data"][0]["current"] is True


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_wait_is_woken_by_a_click_on_another_client(framework: str) -> None:
    """Polling once a minute: only the click's notification can end a 20-second wait early."""
    async with serve(framework, wait_poll_interval=timedelta(minutes=1)) as server:
        await _woken_by_a_click_on_another_client(server)


async def _woken_by_a_click_on_another_client(server: Server) -> None:
    await has_account(server, "fast@example.com")
    async with server.browser() as laptop, server.browser(user_agent=IPHONE) as phone:
        sign_in = await laptop.start_sign_in("fast@example.com", f"{server.base_url}/home")
        code = sign_in["first_factor_verification"]["confirmation_code"]
        page = await phone.get(
            (await phone.get(server.last_link("fast@example.com"))).headers["location"]
        )
        csrf = csrf_token(page.text)
        async with server.long_poll(laptop, f"/client/sign_ins/{sign_in['id']}", wait=20) as answer:
            clicked_at = time.perf_counter()  # the wait is held by the server
            done = await phone.post(
                "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": csrf}
            )
            assert done.status_code == 303
        assert answer.json()["status"] == "complete"  # woken, not timed out
        latency_ms = (answer.at - clicked_at) * 1000
        print(f"wake-up latency ({server.base_url}): {latency_ms:.1f} ms")


async def held_until_resent(
    server: Server,
    laptop: Browser,
    path: str,
    seen: dict[str, Any],
    phone: Browser,
    old_link: str,
) -> dict[str, Any]:
    """The laptop's long poll on ``path``, saying it saw the verification expired, held while
    the phone asks for a new email on the expired ``old_link``'s page; its answer."""
    held = server.long_poll(
        laptop, path, wait=20, version=seen["version"], verification_status="expired"
    )
    with anyio.fail_after(10):  # an answer at once would never be held
        async with held as answer:
            page = await phone.get((await phone.get(old_link)).headers["location"])
            assert "Email me a new link" in page.text
            resent = await phone.post(
                "/auth/v1/verify/resend", data={"csrf_token": csrf_token(page.text)}
            )
            assert resent.status_code == 303
            assert resent.headers["location"] == "/auth/v1/verify/sent"
    waited: dict[str, Any] = answer.json()
    return waited


async def test_a_wait_on_an_expired_link_is_woken_by_its_resend_on_another_device() -> None:
    """The laptop showing "expired" long-polls on, saying it saw the link expired: held (not
    answered at once), it is woken by the resend the phone asks for on the expired link's page,
    with the new verification. Polling once a minute: only the resend's wake-up ends it."""
    clock = FakeClock()
    async with serve("starlette", clock=clock, wait_poll_interval=timedelta(minutes=1)) as server:
        await has_account(server, "renewed@example.com")
        async with server.browser() as laptop, server.browser(user_agent=IPHONE) as phone:
            sign_in = await laptop.start_sign_in("renewed@example.com", f"{server.base_url}/home")
            old_link = server.last_link("renewed@example.com")
            clock.advance(minutes=11)
            path = f"/client/sign_ins/{sign_in['id']}"
            seen = (await laptop.api("GET", path, params={"wait": 10})).json()  # over: at once
            assert seen["first_factor_verification"]["status"] == "expired"
            waited = await held_until_resent(server, laptop, path, seen, phone, old_link)
            assert waited["version"] > seen["version"]
            assert waited["first_factor_verification"]["status"] == "unverified"
            assert server.last_link("renewed@example.com") != old_link


async def test_a_wait_on_an_added_address_expired_link_is_woken_by_its_resend_elsewhere() -> None:
    """The account page showing an added address's email expired long-polls on the address,
    saying it saw it expired: held (not answered at once), it is woken by the resend the phone
    asks for on the expired link's page, with the new verification. Polling once a minute: only
    the resend's wake-up ends it."""
    clock = FakeClock()
    async with (
        serve("starlette", clock=clock, wait_poll_interval=timedelta(minutes=1)) as server,
        server.browser() as laptop,
        server.browser(user_agent=IPHONE) as phone,
    ):
        await sign_up(server, laptop, "owner@example.com")
        address_id = (await laptop.add_address("work@example.com"))["id"]
        prepared = await laptop.address_step(
            address_id,
            "prepare_verification",
            strategy="email_link",
            redirect_url=f"{server.base_url}/profile",
        )
        assert prepared.status_code == 200, prepared.text
        old_link = server.last_link("work@example.com")
        clock.advance(minutes=11)
        path = f"/me/email_addresses/{address_id}"
        seen = (await laptop.api("GET", path, params={"wait": 10})).json()  # over: at once
        assert seen["verification"]["status"] == "expired"
        waited = await held_until_resent(server, laptop, path, seen, phone, old_link)
        assert waited["version"] > seen["version"]
        assert waited["verified"] is False
        assert waited["verification"]["status"] == "unverified"
        assert server.last_link("work@example.com") != old_link
