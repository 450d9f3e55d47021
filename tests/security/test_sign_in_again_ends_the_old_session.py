"""Signing in again on the same browser (the same client cookie) ends that client's previous
session: its token no longer authenticates. The new session and the end of the old ones are
written in one atomic batch with the completion (``domain/completion.py``; the batch itself is
tested in ``tests/core/test_completion.py``)."""

from __future__ import annotations

import pytest

from magiclink_core import Event, SessionStatus

from ._http import make_app
from ._links import client_id, session_cookie, sessions_of, sign_in, signed_up

pytestmark = pytest.mark.anyio


async def _me_with(app_browser, cookie_name: str, token: str) -> int:  # type: ignore[no-untyped-def]
    app_browser.cookies.set(cookie_name, token, domain="app.example.com")
    return int((await app_browser.get("/auth/v1/me")).status_code)


@pytest.mark.parametrize("how", ["link", "email_code"])
async def test_a_new_sign_in_ends_the_previous_session_of_the_browser(how: str) -> None:
    app = make_app(email_verification="link_and_code")
    async with app.browser() as browser:
        old = await signed_up(app, browser, "ann@example.org")
        if how == "link":
            _, link = await sign_in(app, browser, "ann@example.org")
            assert "__magiclink_status=verified" in (await browser.get(link)).headers["location"]
        else:
            prepared, _ = await sign_in(app, browser, "ann@example.org")
            message = app.mailer.last_to("ann@example.org")
            assert message is not None
            code = next(w for w in message.text.split() if w.isdigit() and len(w) >= 6)
            done = await browser.post(
                f"/auth/v1/client/sign_ins/{prepared['id']}/attempt_first_factor",
                json={"strategy": "email_code", "code": code},
            )
            assert done.status_code == 200, done.text
        new = session_cookie(browser)
        assert new != old
        assert (await browser.get("/auth/v1/me")).status_code == 200
        name = next(c.name for c in browser.cookies.jar if c.name.endswith("magiclink_session"))
        async with app.browser() as replay:
            assert await _me_with(replay, name, old) == 401
            assert await _me_with(replay, name, new) == 200
        stored = await sessions_of(app, await client_id(browser))
        assert sorted(s.status for s in stored) == [SessionStatus.ACTIVE, SessionStatus.ENDED]
    assert len(app.of(Event.SESSION_ENDED)) == 1


async def test_another_browser_keeps_its_session() -> None:
    app = make_app()
    async with app.browser() as laptop, app.browser("192.0.2.44") as phone:
        await signed_up(app, laptop, "ann@example.org")
        _, link = await sign_in(app, phone, "ann@example.org")
        await phone.get(link)
        assert (await laptop.get("/auth/v1/me")).status_code == 200
        assert (await phone.get("/auth/v1/me")).status_code == 200
