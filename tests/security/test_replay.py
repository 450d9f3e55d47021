"""Replay: a landing GET, a confirmation POST or a wait answer sent again (by the same client or
by someone who captured it) never yields a second session. Counted in storage."""

from __future__ import annotations

import httpx
import pytest

from magiclink_core import Event, SessionStatus

from ._http import make_app
from ._links import client_id, confirm, open_landing, sessions_of, sign_up, sign_up_with_code

pytestmark = pytest.mark.anyio


async def test_replayed_landing_gets_make_no_second_session() -> None:
    app = make_app()
    async with app.browser() as owner:
        _, link = await sign_up(app, owner, "ann@example.org")
        captured = httpx.Cookies(owner.cookies)  # the request as first sent, cookies and all
        await owner.get(link)
        for _ in range(3):
            await owner.get(link)
        async with app.browser("198.51.100.66") as thief:
            thief.cookies = captured  # the whole first request replayed, client cookie included
            await thief.get(link)
            async with app.browser("198.51.100.67") as stranger:
                await stranger.get(link, follow_redirects=True)
        stored = await sessions_of(app, await client_id(owner))
        assert len(stored) == 1 and stored[0].status is SessionStatus.ACTIVE
    assert len(app.of(Event.SESSION_CREATED)) == 1


async def test_replayed_confirm_posts_make_no_second_session() -> None:
    app = make_app()
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        _, link, code = await sign_up_with_code(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
        captured = httpx.Cookies(phone.cookies)
        for _ in range(3):
            assert (await confirm(phone, page, code)).status_code == 200
        async with app.browser("198.51.100.66") as thief:
            thief.cookies = captured
            await confirm(thief, page, code)
        assert len(await sessions_of(app, await client_id(owner))) == 1
    assert len(app.of(Event.SESSION_CREATED)) == 1


async def test_replayed_wait_answers_make_no_second_session() -> None:
    app = make_app()
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        prepared, link, code = await sign_up_with_code(app, owner, "ann@example.org")
        attempt = prepared["id"]
        assert (await confirm(phone, await open_landing(phone, link), code)).status_code == 200
        for _ in range(3):  # the wait answer, again and again, and collecting its session
            waited = await owner.get(f"/auth/v1/client/sign_ups/{attempt}?wait=1")
            session = waited.json()["created_session_id"]
            assert session is not None
            touched = await owner.post(f"/auth/v1/client/sessions/{session}/touch")
            assert touched.status_code == 200
            assert (await owner.get("/auth/v1/me")).status_code == 200
        async with app.browser("198.51.100.66") as thief:  # not the owner's client: nothing
            assert (
                await thief.get(f"/auth/v1/client/sign_ups/{attempt}?wait=1")
            ).status_code == 404
            refused = await thief.post(f"/auth/v1/client/sessions/{session}/touch")
            assert refused.status_code in (401, 404)
        stored = await sessions_of(app, await client_id(owner))
        assert [s.id for s in stored] == [session]
    assert len(app.of(Event.SESSION_CREATED)) == 1
