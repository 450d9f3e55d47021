"""``GET /v1/client`` tells a page who is signed in: 200 either way, its ``user`` null when
signed out and the user (as ``GET /v1/me`` answers it) when signed in. The browser client reads
it on every page, so a signed-out page asks nothing that answers 401."""

from __future__ import annotations

import pytest

from tests.support import link_in

from .harness import build_app, make_magiclinks, same_origin

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8000"


async def test_the_client_answer_carries_the_user_or_null() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with same_origin(build_app("starlette", magiclinks), BASE) as browser:
        signed_out = await browser.get("/auth/v1/client")
        assert signed_out.status_code == 200
        assert signed_out.json()["user"] is None

        sign_up = await browser.post(
            "/auth/v1/client/sign_ups", json={"email_address": "ada@example.com"}
        )
        await browser.post(
            f"/auth/v1/client/sign_ups/{sign_up.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": BASE + "/"},
        )
        message = mailer.last_to("ada@example.com")
        assert message is not None
        assert (await browser.get(link_in(message.text))).status_code == 303

        signed_in = await browser.get("/auth/v1/client")
        me = await browser.get("/auth/v1/me")
    assert signed_in.status_code == me.status_code == 200
    user = signed_in.json()["user"]
    assert user == me.json()
    assert user["email_addresses"][0]["email_address"] == "ada@example.com"
    assert signed_in.json()["last_active_session_id"] is not None
