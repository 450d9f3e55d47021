"""Mail scanners and link previews fetch every link in an email, with no cookies or with their
own. Such a fetch (GET or HEAD) must consume nothing and complete nothing, under every
cross-device policy: only the starting client's own GET consumes; any other client gets a page
whose one button (``allow``) or code (``confirm``) does it, by a POST."""

from __future__ import annotations

import pytest

from ._http import make_app
from ._links import client_id, confirm, open_landing, sessions_of, sign_up, status_of

pytestmark = pytest.mark.anyio

PENDING = "missing_requirements"


@pytest.mark.parametrize("policy", ["allow", "confirm", "deny"])
async def test_a_scanner_fetch_leaves_the_attempt_pending_and_the_click_works(policy: str) -> None:
    app = make_app(cross_device=policy)
    async with app.browser() as owner:
        _, link = await sign_up(app, owner, "ann@example.org")
        async with app.browser("198.51.100.9") as scanner:  # no cookies at all
            head = await scanner.head(link)
            assert head.status_code == 303 and "verified" not in head.headers["location"]
            fetched = await scanner.get(link, follow_redirects=True)  # and every page after
            assert fetched.status_code in (200, 403)
            assert not any("session" in c for c in fetched.headers.get_list("set-cookie"))
        async with app.browser("198.51.100.10") as preview:  # a preview bot with a client
            await preview.get("/auth/v1/client")
            await preview.head(link)
            await preview.get(link, follow_redirects=True)
        assert await status_of(owner) == PENDING
        landed = await owner.get(link)  # the person's own click still works
        assert "__magiclink_status=verified" in landed.headers["location"], landed.text
        assert await status_of(owner) == "complete"
        assert (await owner.get("/auth/v1/me")).status_code == 200
        assert len(await sessions_of(app, await client_id(owner))) == 1


async def test_under_allow_another_client_gets_one_button_and_no_code() -> None:
    app = make_app(cross_device="allow")
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        _, link = await sign_up(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
        assert page.status_code == 200
        assert 'name="confirmation_code"' not in page.text and "<button" in page.text
        assert await status_of(owner) == PENDING
        done = await confirm(phone, page)  # one tap
        assert done.status_code == 200 and "You're all set" in done.text
        assert await status_of(owner) == "complete"
        assert not any("session" in c for c in done.headers.get_list("set-cookie"))


async def test_under_confirm_another_client_gets_the_code_form() -> None:
    app = make_app()
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        prepared, link = await sign_up(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
        assert 'name="confirmation_code"' in page.text
        no_code = await confirm(phone, page)  # a tap without the code completes nothing
        assert no_code.status_code == 422
        assert await status_of(owner) == PENDING
        code = prepared["verifications"]["email_address"]["confirmation_code"]
        done = await confirm(phone, page, code)
        assert done.status_code == 200 and await status_of(owner) == "complete"
