"""The hosted pages in real Chromium, as a person uses them: sign-in completed on another device
with the code, in the same tab, in another tab; an expired link and its resend; sign-up; a
second email address added and verified on the profile page; waiting that survives a dropped
connection. The tabs that wait move on by themselves (long polls), never by a reload."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import (
    account,
    confirm_on_other_device,
    create_account,
    lands_signed_in,
    not_this,
    open_account,
    signed_in,
    signing_in,
    start_sign_in,
    wait_requests,
)
from tests.e2e.conftest import PHONE, Server


def resend_button(page: Any) -> Any:
    """On a dead link's page: the landing's own resend, or (when the landing redirects to the
    app with ``__magiclink_status=expired``) the completion page's."""
    return page.get_by_role("button", name=re.compile(r"^(Email me a new link|Send a new link)$"))


def track_navigations(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and seen.append(frame.url))
    return seen


def test_sign_in_completed_on_another_device_moves_the_first_one_on(
    device: Any, server: Server
) -> None:
    email, _, page, code = signing_in(device, server, "cross")
    navigations = track_navigations(page)

    phone = device(viewport=PHONE).new_page()  # another device: its own cookies
    phone.goto("/auth/dev/mailbox")
    phone.get_by_role("link", name=re.compile(f"to {re.escape(email)}")).first.click()
    phone.get_by_role("link", name="Open the link").first.click()
    expect(phone.get_by_label(re.compile("code", re.I))).to_be_visible()

    started = time.monotonic()
    confirm_on_other_device(phone, code)
    page.wait_for_url(server.url + "/", timeout=5000)
    elapsed = time.monotonic() - started
    expect(page.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")
    print(f"the waiting tab moved on {elapsed:.2f}s after the confirm")
    assert navigations == [server.url + "/"], navigations  # moved on by itself, no reload
    # the landing's own page on the phone (the middleware's): the desktop carries on
    expect(phone.get_by_role("heading", name="You're all set")).to_be_visible()
    # the phone itself is not signed in: it only vouched for the desktop
    phone.goto("/")
    expect(phone.get_by_test_id("state")).to_contain_text("signed out")


def test_a_wrong_code_is_refused_on_the_other_device(device: Any, server: Server) -> None:
    email, _, page, code = signing_in(device, server, "wrong")
    other = device().new_page()
    other.goto(server.wait_for_link(email, count=2))
    confirm_on_other_device(other, not_this(code))
    expect(
        other.get_by_text(re.compile("(wrong|incorrect|does not match)", re.I)).first
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    confirm_on_other_device(other, code)
    page.wait_for_url(server.url + "/")


def test_sign_in_in_the_same_tab(device: Any, server: Server) -> None:
    email, _, page, _ = signing_in(device, server, "same")
    page.goto(server.wait_for_link(email, count=2))
    lands_signed_in(page, server, email)
    assert "token=" not in page.url and "__magiclink" not in page.url


def test_sign_in_in_another_tab(device: Any, server: Server) -> None:
    email, context, first, _ = signing_in(device, server, "tab")
    navigations = track_navigations(first)
    second = context.new_page()
    second.goto(server.wait_for_link(email, count=2))
    lands_signed_in(second, server, email)
    expect(first.get_by_role("heading", name="You signed in on another tab")).to_be_visible(
        timeout=1000
    )
    assert navigations == []
    first.get_by_role("link", name="Continue").click()
    expect(first.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")


def test_an_expired_link_and_its_resend(device: Any, server: Server) -> None:
    email, context, page, _ = signing_in(device, server, "late")
    old_link = server.wait_for_link(email, count=2)
    server.clock.advance(minutes=11)  # past the 10-minute link lifetime, without sleeping
    # the email carried a link and a code: both are gone
    expired = page.get_by_role("heading", name="Your link and code have expired")
    expect(expired).to_be_visible()
    expect(expired).to_be_focused()

    stale = context.new_page()
    stale.goto(old_link)  # it says so, and offers a new link
    expect(resend_button(stale)).to_be_visible()
    assert "token=" not in stale.url
    stale.close()

    page.get_by_role("button", name="Send a new email").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text("A new email is on its way: use its link or its code.")).to_be_visible()
    new_link = server.wait_for_link(email, count=3)
    assert new_link != old_link
    page.goto(new_link)
    lands_signed_in(page, server, email)


def test_sign_up_on_the_hosted_page(device: Any, server: Server) -> None:
    email = server.email("new")
    context = device()
    page = context.new_page()
    page.goto("/auth/sign-up")
    expect(page.get_by_role("heading", name=re.compile("Create your"))).to_be_visible()
    # keyboard only: type, Enter
    page.get_by_label("Email address").focus()
    page.keyboard.type(email)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_role("heading", name="Check your email")).to_be_focused()
    other = device().new_page()
    other.goto(server.wait_for_link(email))
    confirm_on_other_device(other, page.locator("[data-ml-code]").inner_text().strip())
    page.wait_for_url(server.url + "/welcome")
    expect(page.get_by_role("heading", name=f"Welcome, {email}")).to_be_visible()


def test_sign_up_rejects_a_bad_address_clearly(device: Any, server: Server) -> None:
    context = device()
    page = context.new_page()
    page.goto("/auth/sign-up")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Continue").click()
    alert = page.get_by_role("alert")
    # the server judged it, and the page shows what it said
    said = context.request.post(
        "/auth/v1/client/sign_ups",
        data={"email_address": "not an address"},
        headers={"Origin": server.url},
    )
    assert said.status == 422
    expect(alert).to_have_text(said.json()["errors"][0]["long_message"])
    expect(page.get_by_label("Email address")).to_be_focused()
    expect(page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")


def test_profile_adds_and_verifies_a_second_email(device: Any, server: Server) -> None:
    email, context, page = signed_in(device, server, "owner")
    second = server.email("second")
    open_account(page)
    row = page.locator(f'[data-email="{email}"]')
    expect(row).to_contain_text("Primary")
    expect(row).to_contain_text("Verified")

    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    new_row = page.locator(f'[data-email="{second}"]')
    expect(new_row).to_contain_text("Check your email")
    expect(new_row).to_contain_text("Unverified")
    navigations = track_navigations(page)

    tab = context.new_page()
    tab.goto(server.wait_for_link(second))
    expect(tab.get_by_role("heading", name="Email address verified")).to_be_visible()
    expect(new_row).to_contain_text("Verified", timeout=1000)
    expect(new_row).not_to_contain_text("Unverified")
    expect(page.get_by_role("status").filter(has_text="is verified")).to_be_visible()
    assert navigations == []

    page.get_by_role("button", name=f"Make {second} primary").click()
    expect(page.locator(f'[data-email="{second}"]')).to_contain_text("Primary")
    page.get_by_role("button", name=f"Remove {email}").click()
    page.get_by_role("button", name="Yes, remove").click()
    expect(page.locator(f'[data-email="{email}"]')).to_have_count(0)

    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text(f"Signed in as {second}")


def test_profile_sessions_and_sign_out(device: Any, server: Server) -> None:
    email = server.email("sessions")
    laptop = device()
    create_account(laptop, server, email)
    phone = device(viewport=PHONE)
    phone_page = phone.new_page()
    start_sign_in(phone_page, email)
    phone_page.goto(server.wait_for_link(email, count=2))
    phone_page.wait_for_url(server.url + "/")

    page = laptop.new_page()
    page.goto("/auth/user")
    sessions = page.locator("[data-session]")
    expect(sessions).to_have_count(2)
    expect(page.get_by_text("This device")).to_have_count(1)
    other = sessions.filter(has_not_text="This device")
    other.get_by_role("button", name=re.compile("Sign out")).click()
    expect(page.locator("[data-session]")).to_have_count(1)
    phone_page.goto("/")
    expect(phone_page.get_by_test_id("state")).to_contain_text("signed out")

    page.locator("[data-ml-sign-out]").click()
    page.wait_for_url(re.compile(r"/auth/sign-out$"))
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    page.goto("/auth/user")
    page.wait_for_url(re.compile(r"/auth/sign-in\?redirect_url="))


def test_waiting_survives_a_dropped_connection(device: Any, server: Server) -> None:
    email = account(device, server, "flaky")
    context = device()
    page = context.new_page()
    dropped: list[str] = []

    def drop_some(route: Any) -> None:
        if len(dropped) < 3:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r"/auth/v1/client/sign_ins/[^/?]+\?wait="), drop_some)
    # "Connected again." shows between drops too (each retry first reads once, and that works):
    # the wait that follows the third drop is the moment to look
    with page.expect_request(
        lambda request: "?wait=" in request.url and len(dropped) == 3, timeout=10000
    ):
        start_sign_in(page, email)
        expect(page.get_by_text("Connection lost. Retrying…")).to_be_visible()
    expect(page.get_by_text("Connected again.")).to_be_visible()
    assert len(dropped) == 3
    other = context.new_page()
    other.goto(server.wait_for_link(email, count=2))
    expect(page.get_by_role("heading", name="You signed in on another tab")).to_be_visible(
        timeout=3000
    )


def test_waiting_is_long_polls_not_a_timer(device: Any, server: Server) -> None:
    email = account(device, server, "idle")
    page = device().new_page()
    waits = wait_requests(page)
    start_sign_in(page, email)
    # time passing is what this checks (no event marks "nothing happened"): a timer would have
    # polled several times in 3 s; a long poll stays one request
    page.wait_for_timeout(3000)
    assert 1 <= len(waits) <= 2, waits  # one request held open, not a poll every tick
    assert all("version=" in w for w in waits)


def test_an_expired_link_opened_later_sends_a_new_one_in_one_click(
    device: Any, server: Server
) -> None:
    email, context, page, _ = signing_in(device, server, "later")
    old_link = server.wait_for_link(email, count=2)
    page.close()  # the person closed the tab, and comes back after the link expired
    server.clock.advance(minutes=11)

    page = context.new_page()
    page.goto(old_link)
    resend_button(page).click()
    new_link = server.wait_for_link(email, count=3)
    assert new_link != old_link
    # a sign-in page opened now picks up the wait for the new link
    waiting = context.new_page()
    waiting.goto("/auth/sign-in")
    expect(waiting.get_by_role("heading", name="Check your email")).to_be_visible()
    page.goto(new_link)
    lands_signed_in(page, server, email)
    expect(waiting.get_by_role("heading", name="You signed in on another tab")).to_be_visible()


def test_sign_out_link(device: Any, server: Server) -> None:
    email, _, page = signed_in(device, server, "bye")
    # typed in (or linked from another site): it asks first
    page.goto("/auth/sign-out")
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")
    # from a page of the app: at once
    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text("signed out")


def test_the_completion_page_renews_an_expired_link_in_one_click(
    device: Any, server: Server
) -> None:
    email, context, page, _ = signing_in(device, server, "renew")
    page.close()
    server.clock.advance(minutes=11)
    # where a landing that redirects dead links sends this browser
    page = context.new_page()
    page.goto("/auth/verify?after=%2F&flow=sign_in&__magiclink_status=expired")
    expect(page.get_by_role("heading", name="Your link has expired")).to_be_visible()
    assert "__magiclink_status" not in page.url
    page.get_by_role("button", name="Send a new link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    assert "/auth/sign-in" in page.url
    context.new_page().goto(server.wait_for_link(email, count=3))
    expect(page.get_by_role("heading", name="You signed in on another tab")).to_be_visible()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("flow=email_address&__magiclink_status=verified", "Email address verified"),
        ("flow=sign_in&__magiclink_status=verified", "You're signed in on your other device"),
        ("flow=sign_in&__magiclink_status=expired", "Your link has expired"),
        ("flow=sign_in&__magiclink_status=failed", "This link didn't work"),
    ],
)
def test_the_completion_page_says_the_same_after_a_reload_back_and_forward(
    device: Any, server: Server, query: str, name: str
) -> None:
    """The outcome leaves the address bar, but not the page: a reload (or Back to it) shows
    what it showed, never "This link didn't work" for a link that did."""
    page = device().new_page()
    page.goto("/")
    page.goto(f"/auth/verify?{query}")
    heading = page.get_by_role("heading", name=name)
    expect(heading).to_be_visible()
    assert "__magiclink" not in page.url
    page.reload()
    expect(heading).to_be_visible()
    page.go_back()
    page.wait_for_url(server.url + "/")
    page.go_forward()
    expect(heading).to_be_visible()


def test_an_added_address_verified_in_a_new_tab_stays_verified_on_reload(
    device: Any, server: Server
) -> None:
    _, context, page = signed_in(device, server, "reload-verified")
    second = server.email("second")
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(f'[data-email="{second}"]')).to_contain_text("Check your email")
    tab = context.new_page()
    tab.goto(server.wait_for_link(second))
    verified = tab.get_by_role("heading", name="Email address verified")
    expect(verified).to_be_visible()
    tab.reload()
    expect(verified).to_be_visible()
    expect(tab.get_by_role("heading", name="This link didn't work")).to_have_count(0)


def test_a_sign_in_started_in_another_tab_is_what_the_first_tab_says(
    device: Any, server: Server
) -> None:
    """One sign-in at a time per browser (as the hosted service's client has it): a second tab
    starting one for another address ends the first tab's, which says so, not that a link
    failed, and starts again in one click."""
    email, context, first, _ = signing_in(device, server, "tab-a")
    other = account(device, server, "tab-b")
    second = context.new_page()
    second.goto("/auth/sign-in")  # it picks up the first tab's wait, as a reload would
    expect(second.get_by_role("heading", name="Check your email")).to_be_visible()
    second.get_by_role("button", name="Use a different email").click()
    start_sign_in_here(second, other)

    replaced = first.get_by_role("heading", name="You started another sign-in in another tab")
    expect(replaced).to_be_visible()
    expect(replaced).to_be_focused()
    expect(first.get_by_text("didn't work")).to_have_count(0)
    expect(first.get_by_text("did not work")).to_have_count(0)
    # the second tab's sign-in goes on
    second.goto(server.wait_for_link(other, count=2))
    lands_signed_in(second, server, other)
    # and the first one may start again
    first.get_by_role("button", name="Start again").click()
    expect(first.get_by_label("Email address")).to_have_value(email)


def start_sign_in_here(page: Any, email: str) -> None:
    """The sign-in form already on ``page``: ask for a link for ``email``."""
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()


def test_the_confirmation_code_may_be_typed_with_a_space_or_a_dash(
    device: Any, server: Server
) -> None:
    """Typed as people read it out ("394 526", "394-526"): accepted, no try spent."""
    email, _, page, code = signing_in(device, server, "spaced")
    phone = device(PHONE).new_page()
    phone.goto(server.wait_for_link(email, count=2))
    field = phone.get_by_label("Code shown on the other device")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    field.press_sequentially(f"{code[:3]} {code[3:]}")  # keys, as a person types them
    expect(field).to_have_value(f"{code[:3]} {code[3:]}")
    field.press("Enter")
    expect(phone.get_by_role("heading", name="You're all set")).to_be_visible()
    lands_signed_in(page, server, email)


def test_signing_out_in_one_tab_signs_the_profile_out_in_another(
    device: Any, server: Server
) -> None:
    _, context, profile = signed_in(device, server, "two-tabs-out")
    open_account(profile)
    other = context.new_page()
    other.goto("/auth/sign-out")
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_role("heading", name="You're signed out")).to_be_visible()
    expect(profile.get_by_role("heading", name="You're signed out")).to_be_visible()
    expect(profile.get_by_text("Signed in as")).to_have_count(0)
