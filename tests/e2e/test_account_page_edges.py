"""The account page at the edges. An address removed while a page waits on it (the link or the
code not used yet): the wait ends at once, here or in another tab, and the page says the
address was removed, never "not found" and never thirty seconds later. A double tap on any of
its buttons sends one request. A change or an email refused because another tab changed the
account draws the account as it is, beside why."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e._steps import signed_in
from tests.e2e.conftest import Server
from tests.e2e.test_email_codes import code_from_mailbox

ADD = "/auth/v1/me/email_addresses"

# the profile element's waits, all ended (each wait's own handling has run to its end)
NO_WAIT_LEFT = "() => document.querySelector('magiclink-user-profile')._flows.size === 0"


def account_page_adding(device: Any, server: Server, prefix: str) -> tuple[str, Any, Any, str, Any]:
    """Signed in on the account page, an address just added there, its row waiting for its
    email: the account's address, the browser, the page, the added address and its row."""
    email, context, page = signed_in(device, server, prefix)
    page.goto("/auth/user")
    second = server.email("second")
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator(f'[data-email="{second}"]')
    expect(row).to_contain_text("Check your email")
    return email, context, page, second, row


def wait_on(server: Server) -> re.Pattern[str]:
    """The long poll on an added address."""
    return re.compile(re.escape(server.url + ADD) + r"/[^/?]+\?.*wait=")


def press_remove(tab: Any, address: str) -> None:
    """Remove ``address`` on the account page open in ``tab``: Remove, then "Yes, remove"."""
    tab.get_by_role("button", name=f"Remove {address}").click()
    tab.get_by_role("button", name="Yes, remove").click()


def remove_in(tab: Any, address: str) -> None:
    """``address`` removed on the account page opened anew in ``tab``."""
    tab.goto("/auth/user")
    press_remove(tab, address)
    expect(tab.get_by_role("status")).to_have_text(f"{address} was removed.")


def gone_from(page: Any, row: Any, address: str) -> None:
    """``address``'s row gone from ``page``, its waits all ended, the page saying it was
    removed."""
    expect(row).to_have_count(0)
    page.wait_for_function(NO_WAIT_LEFT)
    expect(page.get_by_role("status")).to_have_text(f"{address} was removed.")


def test_removing_an_address_that_waits_ends_its_wait_and_says_removed(
    device: Any, server: Server
) -> None:
    _, _, page, second, row = account_page_adding(device, server, "remove-waiting")
    with page.expect_response(wait_on(server), timeout=10_000) as ended:
        press_remove(page, second)
    assert ended.value.status == 404  # answered at the removal, not at the wait's timeout
    gone_from(page, row, second)
    expect(page.get_by_role("alert")).to_have_count(0)


def test_an_address_removed_in_another_tab_leaves_the_waiting_page_too(
    device: Any, server: Server
) -> None:
    _, context, page, second, row = account_page_adding(device, server, "remove-elsewhere")
    other = context.new_page()
    other.goto("/auth/user")
    with page.expect_response(wait_on(server), timeout=10_000) as ended:
        press_remove(other, second)
        expect(other.get_by_role("status")).to_have_text(f"{second} was removed.")
    assert ended.value.status == 404
    gone_from(page, row, second)
    expect(page.get_by_role("alert")).to_have_count(0)


def test_an_expired_address_removed_in_another_tab_leaves_the_page_too(
    device: Any, server: Server
) -> None:
    """Expired, the row waits on for a new email sent from elsewhere (a held long poll): the
    address removed meanwhile ends that wait as well. (Eleven minutes on, the removal asks the
    person to confirm it's them first, by the code from an email.)"""
    email, context, page, second, row = account_page_adding(device, server, "remove-expired")
    server.clock.advance(minutes=11)  # past the 10-minute link lifetime, without sleeping
    expect(page.get_by_role("status")).to_contain_text(f"The email to {second} expired")
    other = context.new_page()
    other.goto("/auth/user")
    with page.expect_response(wait_on(server), timeout=10_000) as ended:
        press_remove(other, second)
        other.get_by_role("button", name="Send email").click()
        expect(other.get_by_role("heading", name="Check your email")).to_be_visible()
        field = other.get_by_label("Code from the email")
        field.fill(code_from_mailbox(context.new_page(), email))
        field.press("Enter")
        expect(other.get_by_role("status")).to_have_text(f"{second} was removed.")
    assert ended.value.status == 404
    gone_from(page, row, second)


def test_a_double_tap_on_yes_remove_sends_one_removal(device: Any, server: Server) -> None:
    """The second tap used to send a second DELETE, whose 404 ("not found") could be said
    after, or instead of, "was removed"."""
    _, _, page, second, row = account_page_adding(device, server, "remove-twice")
    deletes: list[str] = []
    page.on("request", lambda r: r.method == "DELETE" and deletes.append(r.url))
    page.get_by_role("button", name=f"Remove {second}").click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as removed:
        page.get_by_role("button", name="Yes, remove").dblclick()
    assert removed.value.status == 200
    gone_from(page, row, second)
    assert len(deletes) == 1, deletes


def test_a_double_tap_on_verify_sends_one_email(device: Any, server: Server) -> None:
    """A second email would make the first one's link stale: opened, it would not work."""
    _, _, page, second, row = account_page_adding(device, server, "verify-twice")
    row.get_by_role("button", name="Cancel").click()
    verify = row.get_by_role("button", name=f"Verify {second}")
    expect(verify).to_be_visible()
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    with page.expect_response(re.compile(r".*/prepare_verification$")):
        verify.dblclick()
    expect(row).to_contain_text("Check your email")
    assert len(posts) == 1, posts
    assert len(server.messages_to(second)) == 2  # the one sent when it was added, and this one


def test_a_double_tap_on_sign_out_signs_out_once(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "sign-out-twice")
    page.goto("/auth/user")
    ends: list[str] = []
    page.on(
        "request", lambda r: r.method == "POST" and r.url.endswith("/end") and ends.append(r.url)
    )
    page.get_by_role("button", name="Sign out").dblclick()
    page.wait_for_url(re.compile(r".*/auth/sign-out$"))
    assert len(ends) == 1, ends


def test_removing_an_address_another_tab_removed_says_it_is_removed(
    device: Any, server: Server
) -> None:
    """Not "No such email address." beside a row of it that stays: what was asked for is so."""
    _, context, page, second, row = account_page_adding(device, server, "removed-twice")
    row.get_by_role("button", name="Cancel").click()
    expect(row.get_by_role("button", name=f"Verify {second}")).to_be_visible()
    remove_in(context.new_page(), second)
    press_remove(page, second)
    expect(row).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text(f"{second} was removed.")


def test_a_change_to_an_address_another_tab_removed_redraws_the_list(
    device: Any, server: Server
) -> None:
    _, context, page, second, row = account_page_adding(device, server, "primary-gone")
    context.new_page().goto(server.wait_for_link(second))
    expect(row).not_to_contain_text("Unverified")
    remove_in(context.new_page(), second)
    page.get_by_role("button", name=f"Make {second} primary").click()
    expect(row).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text("No such email address.")


def test_a_change_refused_because_another_tab_changed_the_account_shows_it_as_it_is(
    device: Any, server: Server
) -> None:
    """Made primary in another tab, the address this page still shows as removable is
    refused: the page then shows the account as it is (that address primary) beside why."""
    email, context, page, second, row = account_page_adding(device, server, "primary-elsewhere")
    context.new_page().goto(server.wait_for_link(second))
    expect(row).not_to_contain_text("Unverified")
    other = context.new_page()
    other.goto("/auth/user")
    other.get_by_role("button", name=f"Make {second} primary").click()
    expect(other.get_by_role("status")).to_have_text(f"{second} is now your primary address.")
    press_remove(page, second)
    expect(page.get_by_role("status")).to_have_text(
        "This is your primary address: make another one primary first."
    )
    expect(row).to_contain_text("Primary")
    expect(page.locator(f'[data-email="{email}"]')).not_to_contain_text("Primary")


def test_verify_on_an_address_another_tab_verified_shows_it_verified(
    device: Any, server: Server
) -> None:
    """Not "This address is verified already." beside a row still saying "Unverified"."""
    _, context, page, second, row = account_page_adding(device, server, "verified-elsewhere")
    row.get_by_role("button", name="Cancel").click()
    verify = row.get_by_role("button", name=f"Verify {second}")
    expect(verify).to_be_visible()
    tab = context.new_page()
    tab.goto(server.wait_for_link(second))
    expect(tab.get_by_role("heading", name="Email address verified")).to_be_visible()
    verify.click()
    expect(page.get_by_role("status")).to_have_text("This address is verified already.")
    expect(row).not_to_contain_text("Unverified")
    expect(row).to_contain_text("Verified")
    assert len(server.messages_to(second)) == 1  # no new email


def test_an_expired_added_address_link_gets_a_new_one_in_one_click_where_it_was_opened(
    device: Any, server: Server
) -> None:
    """The added address's link, opened late in the browser that added it: the page it lands
    on sends a new link in one click and waits for it, and so does the account page, still open
    in its tab."""
    _, context, page, second, row = account_page_adding(device, server, "renew-address")
    server.clock.advance(minutes=11)  # past the 10-minute link lifetime, without sleeping
    expect(page.get_by_role("status")).to_contain_text(f"The email to {second} expired")
    landing = context.new_page()
    landing.goto(server.wait_for_link(second))
    expect(landing.get_by_role("heading", name="Your link has expired")).to_be_visible()
    landing.get_by_role("button", name="Send a new link").click()
    expect(landing.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(landing.get_by_role("status")).to_have_text(
        f"We sent a new link to {second}. Open it to verify the address: this page moves on by"
        " itself."
    )
    assert len(server.messages_to(second)) == 2
    expect(row).to_contain_text("Check your email: we sent a link")  # the first tab waits again
    context.new_page().goto(server.wait_for_link(second, count=2))  # opened from the email
    expect(landing.get_by_role("heading", name="Email address verified")).to_be_visible()
    expect(landing.get_by_role("status")).to_have_text(f"{second} is verified.")
    expect(page.get_by_role("status")).to_have_text(f"{second} is verified.")
