"""The device that opened the link, and the one that waits, in real Chromium: a link renewed on
the phone moves the laptop's expired page back to "check your email" (by the long poll it
keeps, never a reload), and the new link then completes there as usual."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import account, confirm_on_other_device, wait_requests
from tests.e2e.conftest import PHONE, Server
from tests.e2e.test_hosted_pages import resend_button, track_navigations


class Flow(NamedTuple):
    """A hosted flow: its page, the address it asks for, where it goes once done, and where
    the confirmation code sits in the client's own state."""

    path: str
    after: str
    state: str
    verification: str


FLOWS = {
    "sign_in": Flow("/auth/sign-in", "/", "sign_in", "first_factor_verification"),
    "sign_up": Flow("/auth/sign-up", "/welcome", "sign_up", "verifications"),
}


def current_code(context: Any, flow: Flow) -> str:
    """The confirmation code of the attempt's current verification, as the API tells the
    device that started it."""
    answer = context.request.get("/auth/v1/client")
    assert answer.ok, answer.text()
    attempt = answer.json()[flow.state]
    verification = attempt[flow.verification]
    if flow.verification == "verifications":
        verification = verification["email_address"]
    return str(verification["confirmation_code"])


@pytest.mark.parametrize("mode", FLOWS)
def test_a_link_renewed_on_the_phone_moves_the_expired_laptop_back_to_waiting(
    device: Any, server: Server, mode: str
) -> None:
    flow = FLOWS[mode]
    email = account(device, server, "renewed") if mode == "sign_in" else server.email("renewed")
    sent_before = len(server.messages_to(email))
    laptop = device()
    page = laptop.new_page()
    page.goto(flow.path)
    navigations = track_navigations(page)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    waiting = page.get_by_role("heading", name="Check your email")
    expect(waiting).to_be_visible()
    old_link = server.wait_for_link(email, count=sent_before + 1)

    waits = wait_requests(page)
    server.clock.advance(minutes=11)  # past the 10-minute link lifetime, without sleeping
    expect(page.get_by_role("heading", name="Your link and code have expired")).to_be_visible()

    phone = device(PHONE).new_page()
    phone.goto(old_link)
    resend_button(phone).click()
    expect(phone.get_by_role("heading", name="Check your email")).to_be_visible()
    new_link = server.wait_for_link(email, count=sent_before + 2)
    assert new_link != old_link

    # the laptop picks the new email up by itself, with the new code to type on the phone
    expect(waiting).to_be_visible()
    new_code = current_code(laptop, flow)
    expect(page.locator("[data-ml-code]")).to_have_text(new_code)
    # while it showed "expired" it held a long poll: no request in a loop
    assert len(waits) <= 4, waits

    phone.goto(new_link)
    confirm_on_other_device(phone, new_code)
    expect(phone.get_by_role("heading", name="You're all set")).to_be_visible()
    page.wait_for_url(re.compile(re.escape(server.url + flow.after) + "$"))
    assert navigations == [server.url + flow.after], navigations  # moved on once, no reload
