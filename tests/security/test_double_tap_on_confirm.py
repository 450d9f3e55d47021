"""A double tap on the confirmation page's button: the second POST arrives after the first
completed the attempt. The device that just confirmed is answered with the success page again,
not "This link no longer works"; nothing is completed twice; and the page's button disables
itself after the first tap (a small script allowed by the page's CSP nonce)."""

from __future__ import annotations

import re

import httpx
import pytest

from magiclink_core import Event

from ._http import make_app
from ._links import client_id, confirm, open_landing, sessions_of, sign_up, status_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("policy", ["confirm", "allow"])
async def test_a_second_tap_gets_the_success_page_again(policy: str) -> None:
    app = make_app(cross_device=policy)
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        prepared, link = await sign_up(app, owner, "ann@example.org")
        code = prepared["verifications"]["email_address"]["confirmation_code"]
        page = await open_landing(phone, link)
        sent_with = httpx.Cookies(phone.cookies)  # what both taps carry
        first = await confirm(phone, page, code if policy == "confirm" else None)
        assert first.status_code == 200 and "You're all set" in first.text
        for cookies in (phone.cookies, sent_with):  # after the first answer, or racing it
            phone.cookies = httpx.Cookies(cookies)
            second = await confirm(phone, page, code if policy == "confirm" else None)
            assert second.status_code == 200, second.text
            assert "You're all set" in second.text and "no longer works" not in second.text
        assert await status_of(owner) == "complete"
        assert len(await sessions_of(app, await client_id(owner))) == 1
        assert len(app.of(Event.SIGN_UP_COMPLETED)) == 1


async def test_another_device_tapping_after_it_is_told_the_link_is_used() -> None:
    app = make_app(cross_device="allow")
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        _, link = await sign_up(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
        assert (await confirm(phone, page)).status_code == 200
        async with app.browser("192.0.2.45") as other:
            late = await open_landing(other, link)
            assert late.status_code == 422 and "no longer works" in late.text


async def test_the_button_disables_itself_by_a_nonced_script() -> None:
    app = make_app()
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        _, link = await sign_up(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
    csp = page.headers["content-security-policy"]
    found = re.search(r"<script nonce=\"([^\"]+)\">(.*?)</script>", page.text, re.S)
    assert found is not None
    nonce, script = found.groups()
    assert (
        f"script-src 'nonce-{nonce}'" in csp and "unsafe-inline" not in csp.split("script-src")[1]
    )
    assert "disabled = true" in script and "submit" in script
    assert len(re.findall(r"<script", page.text)) == 1
