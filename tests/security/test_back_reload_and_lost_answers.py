"""Back, reload, and an answer lost on the way: the link's landing reached again by the client
that this link already signed in says so ("You're signed in") and offers to continue; a click
whose write landed but whose answer never reached the client is retried by that client and gets
the result (signed in, cookie set), never "this link didn't work". Neither makes a second
session."""

from __future__ import annotations

import pytest

from magiclink_core import Event

from ._http import make_app
from ._links import client_id, confirm, open_landing, sessions_of, sign_up

pytestmark = pytest.mark.anyio


async def test_back_and_reload_say_signed_in_and_offer_to_continue() -> None:
    app = make_app()
    async with app.browser() as owner:
        _, link = await sign_up(app, owner, "ann@example.org", redirect_url="/welcome")
        first = await owner.get(link)
        assert first.status_code == 303
        for _ in range(2):  # back, then reload
            again = await owner.get(link)
            assert again.status_code == 200, again.text
            assert "You're signed in" in again.text and "no longer works" not in again.text
            assert 'href="https://app.example.com/welcome?__magiclink_status=verified' in again.text
            assert (await owner.get("/auth/v1/me")).status_code == 200
        assert len(await sessions_of(app, await client_id(owner))) == 1
        assert len(app.of(Event.SIGN_UP_COMPLETED)) == 1


async def test_a_lost_answer_is_not_a_lost_sign_in() -> None:
    app = make_app()
    async with app.browser() as owner:
        _, link = await sign_up(app, owner, "ann@example.org")
        client = await app.magiclinks.get_client(
            next(c.value for c in owner.cookies.jar if c.name.endswith("magiclink_client"))
        )
        token = link.split("token=")[1]
        await app.magiclinks.verify_link(token, client)  # the write landed; the answer is lost
        assert (await owner.get("/auth/v1/me")).status_code == 401
        retry = await owner.get(link)
        assert retry.status_code == 200 and "You're signed in" in retry.text, retry.text
        assert any("magiclink_session=" in c for c in retry.headers.get_list("set-cookie"))
        assert (await owner.get("/auth/v1/me")).status_code == 200
        assert len(await sessions_of(app, await client_id(owner))) == 1


async def test_a_link_signed_out_of_since_does_not_sign_in_again() -> None:
    app = make_app()
    async with app.browser() as owner:
        _, link = await sign_up(app, owner, "ann@example.org")
        landed = await owner.get(link)
        session = landed.headers["location"].split("__magiclink_created_session=")[1]
        assert (await owner.post(f"/auth/v1/client/sessions/{session}/end")).status_code == 200
        # signing out dropped the client too: the link answers this browser as anyone else
        again = await owner.get(link, follow_redirects=True)
        assert again.status_code == 422 and "no longer works" in again.text
        assert (await owner.get("/auth/v1/me")).status_code == 401


async def test_the_starting_device_opening_a_link_the_phone_confirmed_is_signed_in() -> None:
    app = make_app()
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        prepared, link = await sign_up(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
        code = prepared["verifications"]["email_address"]["confirmation_code"]
        assert (await confirm(phone, page, code)).status_code == 200
        later = await owner.get(link)  # the laptop opens the email too
        assert later.status_code == 200 and "You're signed in" in later.text
        assert (await owner.get("/auth/v1/me")).status_code == 200
        assert len(await sessions_of(app, await client_id(owner))) == 1
