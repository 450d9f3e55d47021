"""The profile's "Add an email address" form: one request per press however often it is
pressed while the server answers ("Adding…", as "Continue" says "Sending…"), and the server's
word on an address said under the field, tied to it, as the sign-in form does."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e._steps import signed_in
from tests.e2e.conftest import Server

ADD = "/auth/v1/me/email_addresses"


class HeldRequests:
    """A route that holds each request to ``ADD`` until the test lets it go (the server's
    answer is slow, without a sleep anywhere)."""

    def __init__(self) -> None:
        self.held: list[Any] = []

    def __call__(self, route: Any) -> None:
        if route.request.method == "POST":
            self.held.append(route)  # answered later, by release()
        else:
            route.continue_()

    def release(self) -> None:
        while self.held:
            self.held.pop(0).continue_()


def test_add_is_busy_until_the_server_answers(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "busy-add")
    page.goto("/auth/user")
    held = HeldRequests()
    page.route(re.compile(re.escape(server.url + ADD) + "$"), held)
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith(ADD) and posts.append(r.url))
    second = server.email("second")
    field = page.get_by_label("Add an email address")
    field.fill(second)
    button = page.get_by_role("button", name=re.compile("^(Add|Adding…)$"))
    button.dblclick()  # a double click, while the first press is unanswered
    expect(button).to_have_text("Adding…")
    expect(button).to_be_disabled()
    field.press("Enter")  # and Enter in the field: nothing more is sent
    assert len(held.held) == 1
    held.release()

    row = page.locator(f'[data-email="{second}"]')
    expect(row).to_contain_text("Check your email")
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_enabled()
    expect(page.get_by_text("added this address already")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    assert posts == [server.url + ADD]
    assert len(server.messages_to(second)) == 1


def test_the_servers_word_on_an_address_is_tied_to_the_field(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "tied")
    page.goto("/auth/user")
    field = page.get_by_label("Add an email address")
    field.fill("nope")
    page.get_by_role("button", name="Add", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("@-sign")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("aria-invalid", "true")
    error_id = alert.get_attribute("id")
    assert error_id and error_id in (field.get_attribute("aria-describedby") or "").split()
    expect(field).to_have_value("nope")  # kept, to be corrected
    # an empty field is refused the same way, without asking the server
    field.fill("")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the email address to add")
    # corrected, the error goes
    field = page.get_by_label("Add an email address")
    field.fill(server.email("fixed"))
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_label("Add an email address")).not_to_have_attribute("aria-invalid", "true")
