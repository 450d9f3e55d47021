"""Guessing the confirmation code (shown on the device that asked, typed on the device that
opened the link): each link fails after ``max_confirmation_code_attempts`` wrong codes, and a
network that moves on to fresh links is stopped by ``confirmation_code_failures_per_ip`` wrong
codes per window (30 an hour by default), checked before any comparison: beyond it even the
right code is refused, with a page that says when to come back (429, ``Retry-After``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magiclink_core import Event
from tests.support import after_confirm, csrf_token, link_in

from ._http import App, make_app

pytestmark = pytest.mark.anyio


def wrong(code: str) -> str:
    return "1" * len(code) if code != "1" * len(code) else "2" * len(code)


async def start(app: App, owner: httpx.AsyncClient, email: str) -> tuple[str, str]:
    """A sign-up started by ``owner``: its confirmation code and its emailed link."""
    created = await owner.post("/auth/v1/client/sign_ups", json={"email_address": email})
    prepared = await owner.post(
        f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
        json={"strategy": "email_link", "redirect_url": "/done"},
    )
    verification: dict[str, Any] = prepared.json()["verifications"]["email_address"]
    message = app.mailer.last_to(email)
    assert message is not None
    return verification["confirmation_code"], link_in(message.text)


async def confirm(browser: httpx.AsyncClient, link: str, code: str) -> httpx.Response:
    """Open ``link`` on ``browser``, type ``code`` on the confirmation page, and follow the
    form's redirect back to that page as a browser does (the page the person sees)."""
    moved = await browser.get(link)
    page = await browser.get(moved.headers["location"])
    answer = await browser.post(
        "/auth/v1/verify/confirm",
        data={"confirmation_code": code, "csrf_token": csrf_token(page.text)},
    )
    if answer.status_code == 303:
        return await browser.get(answer.headers["location"])
    return answer


async def three_wrong_codes(browser: httpx.AsyncClient, link: str) -> None:
    """Three wrong codes for ``link``: two refused with the tries left, the last fails it."""
    for left in ("2 tries left", "1 try left"):
        answer = await confirm(browser, link, "000000")
        assert answer.status_code == 200 and left in answer.text
    assert (await confirm(browser, link, "000000")).status_code == 422


async def test_a_network_guessing_across_fresh_links_is_stopped() -> None:
    app = make_app(confirmation_code_failures_per_ip=6, links_per_address=0)
    async with app.browser("198.51.100.20") as owner, app.browser("203.0.113.7") as guesser:
        for n in range(2):  # two links, three wrong codes each: each link fails
            _, link = await start(app, owner, f"ann{n}@example.org")
            await three_wrong_codes(guesser, link)
        code, link = await start(app, owner, "ann2@example.org")
        refused = await confirm(guesser, link, code)  # the right code: not even compared
        assert refused.status_code == 429
        assert "Too many wrong codes were typed from your network" in refused.text
        assert int(refused.headers["retry-after"]) > 0
        state = (await owner.get("/auth/v1/client")).json()["sign_up"]
        assert state["status"] == "missing_requirements"
        async with app.browser("192.0.2.44") as phone:  # the person's own phone still works
            done = await confirm(phone, link, code)
        assert done.status_code == 200
    limited = app.of(Event.RATE_LIMITED)
    assert [(e.reason, e.ip_address) for e in limited] == [
        ("confirmation_code_failures_per_ip", "203.0.113.7")
    ]
    refused_links = app.of(Event.LINK_REFUSED)
    assert {e.ip_address for e in refused_links} == {"203.0.113.7"}
    # per link: two codes refused, the third failing it, and the page that then says so (it
    # opens the failed link, as any load of that page does)
    assert [e.reason for e in refused_links] == [
        "confirmation_code_incorrect",
        "confirmation_code_incorrect",
        "failed",
        "failed",
    ] * 2


async def test_right_codes_spend_nothing() -> None:
    app = make_app(confirmation_code_failures_per_ip=1, links_per_address=0)
    async with app.browser("198.51.100.20") as owner, app.browser("203.0.113.7") as phone:
        for n in range(3):
            code, link = await start(app, owner, f"ann{n}@example.org")
            assert (await confirm(phone, link, code)).status_code == 200


async def test_a_second_tap_on_confirm_past_the_budget_still_gets_its_done_page() -> None:
    # the budget stops codes being compared; a second tap after success compares none (a
    # resubmitted form, a double tap), so a phone on a network over the limit still gets its
    # answer, while the network's next code is refused
    app = make_app(confirmation_code_failures_per_ip=3, links_per_address=0)
    network = "203.0.113.7"
    async with (
        app.browser("198.51.100.20") as owner,
        app.browser(network) as phone,
        app.browser(network) as guesser,
    ):
        code, link = await start(app, owner, "ann@example.org")
        moved = await phone.get(link)
        page = await phone.get(moved.headers["location"])
        form = {"confirmation_code": code, "csrf_token": csrf_token(page.text)}
        first = await after_confirm(phone, await phone.post("/auth/v1/verify/confirm", data=form))
        assert first.status_code == 200 and "You're all set" in first.text
        _, other = await start(app, owner, "bob@example.org")
        await three_wrong_codes(guesser, other)
        fresh_code, fresh = await start(app, owner, "cy@example.org")
        assert (await confirm(guesser, fresh, fresh_code)).status_code == 429
        again = await phone.post("/auth/v1/verify/confirm", data=form)
        again_page = await after_confirm(phone, again)
        assert again_page.status_code == 200, again_page.text
        assert "You're all set" in again_page.text
