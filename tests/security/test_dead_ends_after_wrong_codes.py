"""No dead ends. After too many wrong confirmation codes on the device that opened the link,
the starting device learns why (the verification's ``failure_reason`` in the API answer, and
its waiting page says wrong codes were typed elsewhere and offers a new email); and every error
page of the landing, on either device, offers a way on (start again, or go to the app)."""

from __future__ import annotations

import pytest

from magiclink_asgi.static_files import assemble_client
from magiclink_core.testing import FakeClock

from ._http import make_app
from ._links import confirm, open_landing, sign_up, sign_up_with_code

pytestmark = pytest.mark.anyio


def _onward(html: str) -> bool:
    return 'href="https://app.example.com/"' in html


def wrong(code: str) -> str:
    return "1" * len(code) if code != "1" * len(code) else "2" * len(code)


async def test_the_starting_device_hears_that_wrong_codes_were_typed_elsewhere() -> None:
    app = make_app()
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        prepared, link, code = await sign_up_with_code(app, owner, "ann@example.org")
        page = await open_landing(phone, link)
        for left in ("2 tries left", "1 try left"):
            page = await confirm(phone, page, wrong(code))
            assert page.status_code == 200 and left in page.text
        last = await confirm(phone, page, wrong(code))
        assert last.status_code == 422, last.text
        assert _onward(last.text), last.text
        state = (await owner.get("/auth/v1/client")).json()["sign_up"]
        verification = state["verifications"]["email_address"]
        assert verification["status"] == "failed"
        assert verification["failure_reason"] == "too_many_confirmation_codes"
        waited = await owner.get(f"/auth/v1/client/sign_ups/{prepared['id']}")
        reason = waited.json()["verifications"]["email_address"]["failure_reason"]
        assert reason == "too_many_confirmation_codes"
        # and a new email is one step away: preparing again works
        again = await owner.post(
            f"/auth/v1/client/sign_ups/{prepared['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": "/done"},
        )
        assert again.status_code == 200
        assert again.json()["verifications"]["email_address"]["failure_reason"] is None
    # the hosted waiting page (the browser client) says so and offers a new email
    client = assemble_client().decode()
    assert "too_many_confirmation_codes" in client and "Wrong codes were typed" in client


async def test_every_landing_error_page_offers_a_way_on() -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    pages: dict[str, str] = {}
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        pages["malformed token"] = (await phone.get("/auth/v1/verify?token=%E4%B8%AD")).text
        pages["no token"] = (await phone.get("/auth/v1/verify")).text
        pages["no landing cookie"] = (await phone.get("/auth/v1/verify/confirm")).text
        _, used = await sign_up(app, owner, "used@example.org")
        await owner.get(used)
        pages["used"] = (await open_landing(phone, used)).text
        _, link, code = await sign_up_with_code(app, owner, "codes@example.org")
        page = await open_landing(phone, link)
        for _ in range(3):
            page = await confirm(phone, page, wrong(code))
        pages["too many codes"] = page.text
        _, expiring = await sign_up(app, owner, "late@example.org")
        clock.advance(minutes=16)
        pages["expired"] = (await open_landing(phone, expiring)).text
    deny = make_app(cross_device="deny")
    async with deny.browser() as owner, deny.browser("192.0.2.44") as phone:
        _, link = await sign_up(deny, owner, "deny@example.org")
        pages["wrong device"] = (await open_landing(phone, link)).text
    for name, html in pages.items():
        assert _onward(html), f"the {name} page is a dead end"
    assert "Email me a new link" in pages["expired"]
