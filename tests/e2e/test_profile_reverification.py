"""The profile page with a session older than ``reverification_window``: an account change is
refused by the API (403 ``reverification_required``), so the page asks the person to confirm by
email, signs them in again with the code from that email, and then makes the change; cancelled,
nothing changes and the page says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.sync_api import expect

from tests.e2e._steps import open_account, signed_in
from tests.e2e.conftest import Server
from tests.e2e.test_email_codes import code_from_mailbox

STALE = timedelta(minutes=11)


def test_an_old_session_confirms_by_email_then_adds_the_address(
    device: Any, server: Server
) -> None:
    email, context, page = signed_in(device, server, "reverify")
    open_account(page)
    server.clock.advance(STALE)
    second = server.email("added-later")
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()

    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()
    page.get_by_role("button", name="Send email").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    code = code_from_mailbox(context.new_page(), email)
    field = page.get_by_label("Code from the email")
    field.fill(code)
    field.press("Enter")

    new_row = page.locator(f'[data-email="{second}"]')
    expect(new_row).to_contain_text("Check your email")  # added, and its own email sent
    expect(new_row).to_contain_text("Unverified")
    kinds = [m.kind for m in server.messages_to(email)]
    assert kinds[-1] == "email_address_added"  # the owner's address is told


def test_cancelled_nothing_changes(device: Any, server: Server) -> None:
    page = signed_in(device, server, "cancel").page
    open_account(page)
    server.clock.advance(STALE)
    never = server.email("never")
    page.get_by_label("Add an email address").fill(never)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    # said under the field the address was typed in, which keeps it
    expect(page.get_by_role("alert")).to_contain_text("Nothing was changed")
    field = page.get_by_label("Add an email address")
    expect(field).to_have_value(never)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_enabled()
    expect(page.locator("[data-email]")).to_have_count(1)
