"""The code in the email, typed on the hosted pages in real Chromium: read from the development
mailbox page (as a person reads their email), typed beside "check your email" for a sign-in, a
sign-up and an added address; a wrong code, too many wrong codes; and the link opened instead,
elsewhere, while the code field waits. Whichever is used first, the waiting tab moves on once.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e._steps import (
    account,
    confirm_on_other_device,
    create_account,
    lands_signed_in,
    not_this,
    signing_in,
    start_sign_in,
)
from tests.e2e.conftest import PHONE, Server
from tests.e2e.test_hosted_pages import track_navigations
from tests.e2e.test_screenshots import check_layout


def open_newest_email(page: Any, email: str) -> None:
    """Open, in the development mailbox, the newest email to ``email``."""
    page.goto("/auth/dev/mailbox")
    page.get_by_role("link", name=re.compile(f"to {re.escape(email)}")).first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def code_from_mailbox(page: Any, email: str) -> str:
    """The code of the newest email to ``email``, as the mailbox page shows it."""
    open_newest_email(page, email)
    box = page.get_by_role("group", name=re.compile("^Code from the email"))
    code = str(box.locator("[data-ml-email-code]").inner_text()).strip()
    assert re.fullmatch(r"\d{6}", code), code
    return code


def code_field(page: Any) -> Any:
    return page.get_by_label("Code from the email", exact=True)


def type_code(page: Any, code: str, scope: Any = None) -> None:
    where = scope if scope is not None else page
    code_field(where).fill(code)
    where.get_by_role("button", name="Verify code").click()


def test_sign_in_with_the_code_read_from_the_mailbox(device: Any, server: Server) -> None:
    email, _, page, confirmation = signing_in(device, server, "codein")
    navigations = track_navigations(page)
    # beside "check your email": the field for the emailed code, and the other code, told apart
    field = code_field(page)
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(page.get_by_text("We sent a link and a code to")).to_be_visible()
    expect(
        page.get_by_role(
            "group", name="If you open the link on another device, type this code there:"
        )
    ).to_contain_text(confirmation)

    phone = device(viewport=PHONE).new_page()  # where the email is read
    code = code_from_mailbox(phone, email)
    expect(phone.get_by_role("link", name="Open the link")).to_be_visible()  # beside the link
    type_code(page, code)
    lands_signed_in(page, server, email)
    assert navigations == [server.url + "/"]  # moved on once

    # the link went with the code: opened now, it signs nobody in
    phone.get_by_role("link", name="Open the link").click()
    phone.goto("/")
    expect(phone.get_by_test_id("state")).to_contain_text("signed out")


def test_sign_up_with_the_code_on_a_phone(device: Any, server: Server) -> None:
    email = server.email("codeup")
    phone = device(viewport=PHONE)
    page = phone.new_page()
    page.goto("/auth/sign-up")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_focused()
    expect(code_field(page)).to_be_visible()
    check_layout(page)  # 390 px: the field, its button and both codes fit without scrolling
    code = code_from_mailbox(phone.new_page(), email)  # another tab of the phone
    code_field(page).fill(code)
    code_field(page).press("Enter")
    page.wait_for_url(server.url + "/welcome")
    expect(page.get_by_role("heading", name=f"Welcome, {email}")).to_be_visible()


def test_profile_verifies_an_added_address_with_its_code(device: Any, server: Server) -> None:
    email = server.email("codeowner")
    second = server.email("codesecond")
    context = device()
    create_account(context, server, email)
    page = context.new_page()
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    waiting = page.get_by_role("group", name=f"Verifying {second}")
    expect(waiting).to_contain_text("we sent a link and a code to")
    navigations = track_navigations(page)

    code = code_from_mailbox(context.new_page(), second)
    type_code(page, code, scope=waiting)
    row = page.locator(f'[data-email="{second}"]')
    expect(row).to_contain_text("Verified")
    expect(row).not_to_contain_text("Unverified")
    expect(page.get_by_role("status").filter(has_text=f"{second} is verified")).to_be_visible()
    expect(waiting).to_have_count(0)
    assert navigations == []


def test_a_wrong_code_then_the_right_one(device: Any, server: Server) -> None:
    email, _, page, _ = signing_in(device, server, "codewrong")
    code = code_from_mailbox(device().new_page(), email)
    field = code_field(page)

    # not a code at all: said at once, and no try is spent on it
    field.fill("12 34")
    page.get_by_role("button", name="Verify code").click()
    expect(page.get_by_role("alert")).to_have_text("Type the 6-digit code from the email.")

    type_code(page, not_this(code))
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("That is not the code from the email. 4 tries left.")
    expect(field).to_have_attribute("aria-invalid", "true")
    error_id = alert.get_attribute("id")
    assert error_id and error_id in (field.get_attribute("aria-describedby") or "").split()
    expect(field).to_be_focused()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    type_code(page, f"{code[:3]} {code[3:]}")  # typed with a space, as the email spaces it
    lands_signed_in(page, server, email)


def test_too_many_wrong_codes_spend_the_email_and_a_new_one_works(
    device: Any, server: Server
) -> None:
    email, _, page, _ = signing_in(device, server, "codespent")
    mailbox = device().new_page()
    code = code_from_mailbox(mailbox, email)
    for left in (4, 3, 2, 1):
        type_code(page, not_this(code))
        tries = "try" if left == 1 else "tries"
        expect(page.get_by_role("alert")).to_have_text(
            f"That is not the code from the email. {left} {tries} left."
        )
    type_code(page, not_this(code))
    expect(page.get_by_role("heading", name="That didn't work")).to_be_focused()
    expect(page.get_by_text("Too many wrong codes were typed")).to_be_visible()

    page.get_by_role("button", name="Send a new email").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    fresh = code_from_mailbox(mailbox, email)
    type_code(page, fresh)
    lands_signed_in(page, server, email)


def test_the_link_opened_on_another_device_while_the_code_field_waits(
    device: Any, server: Server
) -> None:
    email, _, page, confirmation = signing_in(device, server, "codeorlink")
    navigations = track_navigations(page)
    code_field(page).fill("12")  # half typed: it stops nothing

    phone = device(viewport=PHONE).new_page()
    open_newest_email(phone, email)
    phone.get_by_role("link", name="Open the link").click()
    confirm_on_other_device(phone, confirmation)
    lands_signed_in(page, server, email)
    assert navigations == [server.url + "/"]


def test_the_code_typed_in_one_tab_moves_the_other_tab_on(device: Any, server: Server) -> None:
    email = account(device, server, "codetabs")
    context = device()
    first = context.new_page()
    start_sign_in(first, email)
    second = context.new_page()
    second.goto("/auth/sign-in")  # picks up the same sign-in's wait
    expect(code_field(second)).to_be_visible()
    first_moves = track_navigations(first)

    type_code(second, code_from_mailbox(device().new_page(), email))
    second.wait_for_url(server.url + "/")
    # the tab where the code was typed went on; the other one says where it happened
    expect(first.get_by_role("heading", name="You signed in on another tab")).to_be_visible()
    assert first_moves == []
