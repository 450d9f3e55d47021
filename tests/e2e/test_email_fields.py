"""Email fields let the server decide what an address is. Chromium's own ``type=email`` check
refuses internationalised addresses (``jürgen@example.com``) that mail delivers and the server
accepts, so the fields are ``type=text`` with the email keyboard and autofill, and what the
server says about an address is what the page shows."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import signed_in
from tests.e2e.conftest import Server

JURGEN = "jürgen@example.com"


def assert_lets_the_server_decide(field: Any) -> None:
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_attribute("inputmode", "email")
    expect(field).to_have_attribute("autocomplete", "email")
    expect(field).to_have_attribute("spellcheck", "false")
    expect(field).to_have_attribute("autocapitalize", "off")


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/auth/sign-in", "Email address"),
        ("/auth/sign-up", "Email address"),
        ("/examples/components", "Email address"),  # the component in a page of the app
        ("/examples/custom-sign-in", "Email address"),  # the demo's own pages too
        ("/examples/custom-sign-up", "Email address"),
    ],
)
def test_every_email_field_lets_the_server_decide(
    device: Any, server: Server, path: str, label: str
) -> None:
    page = device().new_page()
    page.goto(path)
    assert_lets_the_server_decide(page.get_by_label(label))


def test_the_profile_and_add_email_fields_let_the_server_decide(
    device: Any, server: Server
) -> None:
    _, _, page = signed_in(device, server, "fields")
    page.goto("/auth/user")
    assert_lets_the_server_decide(page.get_by_label("Add an email address"))
    page.goto("/examples/add-email")
    assert_lets_the_server_decide(page.get_by_label("New email address"))


def test_an_internationalised_address_signs_up_then_signs_in(device: Any, server: Server) -> None:
    context = device()
    page = context.new_page()
    page.goto("/auth/sign-up")
    page.get_by_label("Email address").fill(JURGEN)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text(JURGEN)).to_be_visible()
    page.goto(server.wait_for_link(JURGEN))  # opened in the same tab
    page.wait_for_url(server.url + "/welcome")
    expect(page.get_by_role("heading", name=f"Welcome, {JURGEN}")).to_be_visible()

    # signed out, and in again on another device, with the code from the email
    other = device().new_page()
    other.goto("/auth/sign-in")
    other.get_by_label("Email address").fill(JURGEN)
    other.get_by_role("button", name="Continue").click()
    expect(other.get_by_role("heading", name="Check your email")).to_be_visible()
    server.wait_for_link(JURGEN, count=2)
    other.get_by_label("Code from the email").fill(server.messages_to(JURGEN)[-1].email_code)
    other.get_by_role("button", name="Verify code").click()
    other.wait_for_url(server.url + "/")
    expect(other.get_by_test_id("state")).to_contain_text(f"Signed in as {JURGEN}")


def test_the_profile_adds_an_internationalised_address(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "add-intl")
    second = f"zoë-{server.email('x').split('@')[0]}@example.com"
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator(f'[data-email="{second}"]')
    expect(row).to_contain_text("Check your email")
    server.wait_for_link(second)


@pytest.mark.parametrize(
    ("path", "label", "button"),
    [
        ("/auth/sign-in", "Email address", "Continue"),
        ("/auth/sign-up", "Email address", "Continue"),
    ],
)
def test_the_servers_word_on_an_address_is_shown(
    device: Any, server: Server, path: str, label: str, button: str
) -> None:
    context = device()
    page = context.new_page()
    page.goto(path)
    typed = "ada@@example.com"
    page.get_by_label(label).fill(typed)
    page.get_by_role("button", name=button).click()
    message = servers_word(context, server, "/auth/v1/client/sign_ins", identifier=typed)
    expect(page.get_by_role("alert")).to_have_text(message)
    field = page.get_by_label(label)
    expect(field).to_be_focused()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value(typed)  # kept, to be corrected


def test_the_profile_shows_the_servers_word_on_an_address(device: Any, server: Server) -> None:
    _, context, page = signed_in(device, server, "bad-add")
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill("ada@@example.com")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(word_on_adding(context, server))
    field = page.get_by_label("Add an email address")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("aria-invalid", "true")


@pytest.mark.parametrize(
    ("path", "button", "api", "field"),
    [
        ("/examples/custom-sign-in", "Sign in with magic link", "sign_ins", "identifier"),
        ("/examples/custom-sign-up", "Sign up with magic link", "sign_ups", "email_address"),
    ],
)
def test_the_custom_example_pages_say_the_servers_word_on_an_address(
    device: Any, server: Server, path: str, button: str, api: str, field: str
) -> None:
    # seen in the demo: a typo on these pages showed nothing at all (the refusal went unheard)
    context = device()
    page = context.new_page()
    page.goto(path)
    page.get_by_label("Email address").fill("ada@@example.com")
    page.get_by_role("button", name=button).click()
    message = servers_word(context, server, f"/auth/v1/client/{api}", **{field: "ada@@example.com"})
    expect(page.get_by_role("status")).to_have_text(message)


def test_the_custom_add_email_page_says_the_servers_word_on_an_address(
    device: Any, server: Server
) -> None:
    _, context, page = signed_in(device, server, "bad-custom-add")
    page.goto("/examples/add-email")
    page.get_by_label("New email address").fill("ada@@example.com")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#status")).to_have_text(word_on_adding(context, server))


def word_on_adding(context: Any, server: Server) -> str:
    """What the server says to the signed-in ``context`` adding the address
    ``ada@@example.com``."""
    return servers_word(
        context, server, "/auth/v1/me/email_addresses", email_address="ada@@example.com"
    )


def servers_word(context: Any, server: Server, path: str, **data: str) -> str:
    """The message of the 422 the API answers ``context`` posting ``data`` to ``path``: what
    the page must show."""
    said = context.request.post(path, data=data, headers={"Origin": server.url})
    assert said.status == 422
    return str(said.json()["errors"][0]["long_message"])
