"""What the hosted pages offer follows ``Settings.email_verification``. An app that sends codes
only: the code field alone (no link to wait for, no code for another device), and a spent
budget of tries said plainly (this module's server, with a small budget per address). An app
that sends links only: no code field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import lands_signed_in, not_this
from tests.e2e.conftest import DESKTOP, Server, serve_demo
from tests.e2e.test_email_codes import code_field, code_from_mailbox, type_code


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve_demo(email_verification="code", email_code_failures_per_address=3) as running:
        yield running


def create_account_by_code(context: Any, server: Server, email: str) -> None:
    page = context.new_page()
    page.goto("/auth/sign-up")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    # the page says so once the email is sent: the mailbox read before then may not hold it
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    type_code(page, code_from_mailbox(context.new_page(), email))
    page.wait_for_url(server.url + "/welcome")
    page.close()


def ask_to_sign_in(page: Any, email: str) -> None:
    page.goto("/auth/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()


def test_only_the_code_field_is_offered(device: Any, server: Server) -> None:
    email = server.email("onlycode")
    create_account_by_code(device(), server, email)
    page = device().new_page()
    ask_to_sign_in(page, email)
    expect(page.get_by_text(f"We sent a code to {email}. Type it here to sign in.")).to_be_visible()
    expect(code_field(page)).to_be_visible()
    expect(page.get_by_role("button", name="Resend the code")).to_be_visible()
    # no link was sent: nothing says to open one, and there is no code for another device
    expect(page.locator("[data-ml-code]")).to_have_count(0)
    expect(page.get_by_text("open the link", exact=False)).to_have_count(0)

    mailbox = device().new_page()
    code = code_from_mailbox(mailbox, email)
    expect(mailbox.get_by_role("link", name="Open the link")).to_have_count(0)
    type_code(page, code)
    lands_signed_in(page, server, email)


def test_a_spent_budget_of_tries_is_said_plainly(device: Any, server: Server) -> None:
    email = server.email("budget")
    create_account_by_code(device(), server, email)  # a right code: it spends none of the three
    page = device().new_page()
    ask_to_sign_in(page, email)
    code = code_from_mailbox(device().new_page(), email)
    type_code(page, not_this(code))
    expect(page.get_by_role("alert")).to_have_text(
        "That is not the code from the email. 4 tries left."
    )
    type_code(page, not_this(code))
    expect(page.get_by_role("alert")).to_have_text(
        "That is not the code from the email. 3 tries left."
    )
    type_code(page, not_this(code))
    expect(page.get_by_role("alert")).to_have_text(
        "That is not the code from the email. 2 tries left."
    )
    expect(code_field(page)).to_have_attribute("aria-invalid", "true")  # what was typed is wrong
    type_code(page, code)  # the right code, but the address's budget of wrong ones is spent
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many codes were tried\. Try again in \d+ minutes\.$")
    )
    # a limit, not the code: the field is not said to be wrong (typing another would not help)
    expect(code_field(page)).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text("signed out")


def test_an_app_that_sends_links_only_offers_no_code_field(browser: Any) -> None:
    with serve_demo(email_verification="link") as links_only:
        context = browser.new_context(base_url=links_only.url, viewport=DESKTOP)
        context.set_default_timeout(5000)
        try:
            page = context.new_page()
            ask_to_sign_in(page, links_only.email("linkonly"))
            expect(page.get_by_text("We sent a link to")).to_be_visible()
            expect(page.locator("[data-ml-code]")).to_have_count(1)  # for another device
            expect(code_field(page)).to_have_count(0)
            expect(page.get_by_role("button", name="Resend the link")).to_be_visible()
        finally:
            context.close()
