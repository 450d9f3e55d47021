"""The device that opened the link, and the one that waits, in real Chromium: a link renewed on
the phone moves the laptop's expired page back to "check your email" (by the long poll it
keeps, never a reload), and the new link then completes there as usual; the same for an
address added on the profile, whose own Verify ends that wait; wrong codes typed on
the phone until the link gives out are said to be so on both devices, and the phone is offered
the attempt's own way to start again."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import (
    account,
    confirm_on_other_device,
    not_this,
    open_account,
    signed_in,
    wait_requests,
)
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


class Waiting(NamedTuple):
    """The laptop's page waiting for the link, and what it asked for."""

    email: str
    laptop: Any
    page: Any
    link: str
    sent_before: int


def start_on_laptop(device: Any, server: Server, mode: str, prefix: str) -> Waiting:
    """A sign-in (of an account made elsewhere) or a sign-up started on the hosted page of a new
    device, waiting for its link."""
    flow = FLOWS[mode]
    email = account(device, server, prefix) if mode == "sign_in" else server.email(prefix)
    sent_before = len(server.messages_to(email))
    laptop = device()
    page = laptop.new_page()
    page.goto(flow.path)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = server.wait_for_link(email, count=sent_before + 1)
    return Waiting(email, laptop, page, link, sent_before)


@pytest.mark.parametrize("mode", FLOWS)
def test_a_link_renewed_on_the_phone_moves_the_expired_laptop_back_to_waiting(
    device: Any, server: Server, mode: str
) -> None:
    flow = FLOWS[mode]
    email, laptop, page, old_link, sent_before = start_on_laptop(device, server, mode, "renewed")
    navigations = track_navigations(page)
    waiting = page.get_by_role("heading", name="Check your email")

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


@pytest.mark.parametrize(
    ("mode", "again", "other", "heading"),
    [
        ("sign_up", "Sign up again", "Sign in again", "Create your"),
        ("sign_in", "Sign in again", "Sign up again", "Sign in to"),
    ],
)
def test_wrong_codes_on_the_phone_are_said_so_there_with_the_attempts_way_on(
    device: Any, server: Server, mode: str, again: str, other: str, heading: str
) -> None:
    _, _, page, link, _ = start_on_laptop(device, server, mode, "codes-out")
    code = page.locator("[data-ml-code]").inner_text().strip()
    phone = device(PHONE).new_page()
    phone.goto(link)
    for left in ("2 tries left", "1 try left"):
        confirm_on_other_device(phone, not_this(code))
        expect(phone.get_by_role("alert")).to_contain_text(left)
    confirm_on_other_device(phone, not_this(code))

    expect(phone.get_by_role("heading", name="This link no longer works")).to_be_visible()
    expect(phone.get_by_role("alert")).to_contain_text("Too many wrong codes were typed")
    expect(phone.get_by_text("It was used already")).to_have_count(0)
    expect(phone.get_by_role("link", name=other)).to_have_count(0)
    # the laptop says the same, in its words
    expect(
        page.get_by_text("Wrong codes were typed on the device where your link was")
    ).to_be_visible()
    # and the phone's way on is the attempt's own
    phone.get_by_role("link", name=again).click()
    expect(phone.get_by_role("heading", name=re.compile(heading))).to_be_visible()


def address_code(context: Any, email: str) -> str:
    """The confirmation code of an added address's current verification, as the API tells the
    signed-in device that added it."""
    answer = context.request.get("/auth/v1/me")
    assert answer.ok, answer.text()
    (address,) = [a for a in answer.json()["email_addresses"] if a["email_address"] == email]
    return str(address["verification"]["confirmation_code"])


def test_an_added_address_renewed_on_the_phone_moves_the_account_page_back_to_waiting(
    device: Any, server: Server
) -> None:
    _, laptop, page = signed_in(device, server, "profile-renewed")
    second = server.email("second")
    open_account(page)
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator(f'[data-email="{second}"]')
    expect(row).to_contain_text("Check your email")
    old_link = server.wait_for_link(second)
    navigations = track_navigations(page)

    waits = wait_requests(page)
    server.clock.advance(minutes=11)  # past the 10-minute link lifetime, without sleeping
    expect(page.get_by_role("status")).to_contain_text(f"The email to {second} expired")
    expect(row).not_to_contain_text("Check your email")

    phone = device(PHONE).new_page()
    phone.goto(old_link)
    resend_button(phone).click()
    expect(phone.get_by_role("heading", name="Check your email")).to_be_visible()
    new_link = server.wait_for_link(second, count=2)
    assert new_link != old_link

    # the account page picks the new email up by itself, with the new code to type on the phone
    expect(row).to_contain_text("Check your email")
    new_code = address_code(laptop, second)
    expect(row.locator("[data-ml-code]")).to_have_text(new_code)
    # while it showed "expired" it held a long poll: no request in a loop
    assert len(waits) <= 4, waits

    phone.goto(new_link)
    confirm_on_other_device(phone, new_code)
    expect(phone.get_by_role("heading", name="You're all set")).to_be_visible()
    expect(row).to_contain_text("Verified")
    expect(row).not_to_contain_text("Unverified")
    expect(page.get_by_role("status")).to_contain_text(f"{second} is verified")
    assert navigations == [], navigations  # by the long poll, never a reload


EXPIRED_WAIT = "verification_status=expired"


def test_verify_on_the_expired_row_ends_its_wait_for_another_devices_email(
    device: Any, server: Server
) -> None:
    """Pressing Verify on the expired row sends the new email from here: the long poll held for
    one sent elsewhere ends, and the row waits for the new link alone."""
    _, context, page = signed_in(device, server, "profile-verify-again")
    second = server.email("second")
    open_account(page)
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator(f'[data-email="{second}"]')
    expect(row).to_contain_text("Check your email")
    server.wait_for_link(second)
    held: list[str] = []
    page.on("request", lambda r: EXPIRED_WAIT in r.url and held.append(r.url))
    with page.expect_request(lambda r: EXPIRED_WAIT in r.url):
        server.clock.advance(minutes=11)
    expect(page.get_by_role("status")).to_contain_text(f"The email to {second} expired")

    with page.expect_event("requestfailed", lambda r: EXPIRED_WAIT in r.url):
        page.get_by_role("button", name=f"Verify {second}").click()  # ends the held wait
    expect(row).to_contain_text("Check your email")
    new_link = server.wait_for_link(second, count=2)
    # the row's own wait goes on: the new link completes the address
    context.new_page().goto(new_link)
    expect(page.get_by_role("status")).to_contain_text(f"{second} is verified")
    expect(row).not_to_contain_text("Unverified")
    assert len(held) == 1, held  # one held wait, ended by Verify, not taken up again
    assert len(server.messages_to(second)) == 2
