"""The code in the email, typed on the device that asked, through Starlette, FastAPI and Quart
over real HTTP (uvicorn): sign-in, sign-up and email verification, in the hosted service's
shape (``attempt_first_factor``, ``attempt_verification``)."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import FRAMEWORKS, Browser, Server, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(params=FRAMEWORKS)
async def server(request: pytest.FixtureRequest) -> Any:
    async with serve(request.param) as running:
        yield running


async def signed_up_by_code(server: Server, browser: Browser, email: str) -> dict[str, Any]:
    sign_up = await browser.start_sign_up(email, f"{server.base_url}/welcome")
    done = await browser.api(
        "POST",
        f"/client/sign_ups/{sign_up['id']}/attempt_verification",
        json={"strategy": "email_code", "code": server.last_code(email)},
    )
    assert done.status_code == 200, done.text
    return dict(done.json())


async def test_sign_up_then_sign_in_by_code_set_the_session_cookie(server: Server) -> None:
    async with server.browser() as laptop:
        sign_up = await signed_up_by_code(server, laptop, "code@example.com")
        assert sign_up["status"] == "complete" and sign_up["created_session_id"]
        assert (await laptop.whoami())["authenticated"] is True
    async with server.browser() as phone:
        sign_in = await phone.start_sign_in("code@example.com", f"{server.base_url}/home")
        factors = [f["strategy"] for f in sign_in["supported_first_factors"]]
        assert factors == ["email_link", "email_code"]
        wrong = await phone.api(
            "POST",
            f"/client/sign_ins/{sign_in['id']}/attempt_first_factor",
            json={"strategy": "email_code", "code": "not-it"},
        )
        assert wrong.status_code == 422
        error = wrong.json()["errors"][0]
        assert error["code"] == "email_code_incorrect" and error["meta"]["attempts_left"] == 4
        right = await phone.api(
            "POST",
            f"/client/sign_ins/{sign_in['id']}/attempt_first_factor",
            data={"strategy": "email_code", "code": server.last_code("code@example.com")},
        )
        assert right.status_code == 200, right.text
        assert right.json()["status"] == "complete"
        assert right.json()["first_factor_verification"]["status"] == "verified"
        me = await phone.whoami()
        assert me["authenticated"] is True and me["session"] == right.json()["created_session_id"]


async def test_another_client_cannot_use_the_code(server: Server) -> None:
    async with server.browser() as first:
        await signed_up_by_code(server, first, "mine@example.com")
    async with server.browser() as owner, server.browser() as stranger:
        sign_in = await owner.start_sign_in("mine@example.com", f"{server.base_url}/home")
        stolen = await stranger.api(
            "POST",
            f"/client/sign_ins/{sign_in['id']}/attempt_first_factor",
            json={"strategy": "email_code", "code": server.last_code("mine@example.com")},
        )
        assert stolen.status_code == 404
        assert (await stranger.whoami())["authenticated"] is False


async def test_an_added_address_is_verified_by_code(server: Server) -> None:
    async with server.browser() as browser:
        await signed_up_by_code(server, browser, "home@example.com")
        address_id = (await browser.add_address("work@example.com"))["id"]
        prepared = await browser.address_step(
            address_id, "prepare_verification", strategy="email_code"
        )
        assert prepared.status_code == 200, prepared.text
        code = server.last_code("work@example.com")
        verified = await browser.address_step(address_id, "attempt_verification", code=code)
        assert verified.status_code == 200, verified.text
        assert verified.json()["verified"] is True


async def test_a_code_strategy_the_app_does_not_send_is_refused() -> None:
    async with serve("starlette", email_verification="link") as server, server.browser() as tab:
        created = await tab.api("POST", "/client/sign_ups", json={"email_address": "l@example.com"})
        refused = await tab.api(
            "POST",
            f"/client/sign_ups/{created.json()['id']}/prepare_verification",
            json={"strategy": "email_code"},
        )
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("email_verification", "strategy", "carried"),
    [
        ("link_and_code", "email_link", ["email_link", "email_code"]),
        ("link_and_code", "email_code", ["email_code"]),
        ("link", "email_link", ["email_link"]),
        ("code", "email_link", ["email_code"]),  # a link asked of a codes-only app: a code
        ("code", "email_code", ["email_code"]),
    ],
)
async def test_each_verification_says_what_its_email_carries(
    email_verification: str, strategy: str, carried: list[str]
) -> None:
    """What a page offers beside "check your email" (a link to open, a code to type here)
    follows what the email carries: the verification's ``supported_strategies``."""
    async with (
        serve("starlette", email_verification=email_verification) as server,
        server.browser() as tab,
    ):
        body = {"strategy": strategy, "redirect_url": f"{server.base_url}/welcome"}
        created = await tab.api("POST", "/client/sign_ups", json={"email_address": "s@example.com"})
        sign_up = await tab.api(
            "POST", f"/client/sign_ups/{created.json()['id']}/prepare_verification", json=body
        )
        assert sign_up.status_code == 200, sign_up.text
        verification = sign_up.json()["verifications"]["email_address"]
        assert verification["supported_strategies"] == carried
        message = server.mailer.last_to("s@example.com")
        assert message is not None
        assert ("email_code" in carried) == (message.email_code is not None)
        assert ("email_link" in carried) == ("/auth/v1/verify?token=" in message.text)

        # a sign-in of an address with no account looks the same (nothing to enumerate)
        created = await tab.api("POST", "/client/sign_ins", json={"identifier": "no@example.com"})
        sign_in = await tab.api(
            "POST", f"/client/sign_ins/{created.json()['id']}/prepare_first_factor", json=body
        )
        assert sign_in.json()["first_factor_verification"]["supported_strategies"] == carried
