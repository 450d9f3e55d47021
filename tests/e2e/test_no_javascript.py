"""The hosted pages with JavaScript turned off: each says it needs it, except the sign-out page,
which signs out with a plain form (the landing's way: a CSRF token in the form and in a cookie,
an answer that redirects, so Back and reload never send it again).

Playwright's text and role selectors skip what is inside ``<noscript>`` (Chromium shows it, as
the screenshots of a page without JavaScript do), so these tests find it by CSS."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import create_account
from tests.e2e.conftest import Server


def no_script(device: Any) -> Any:
    return device(java_script_enabled=False)


def shown(page: Any) -> Any:
    """What the page's ``<noscript>`` shows (it is rendered: scripts are off)."""
    return page.locator("main noscript")


@pytest.mark.parametrize(
    ("path", "needs"),
    [
        ("/auth/sign-in", "Signing in needs JavaScript turned on."),
        ("/auth/sign-up", "Signing up needs JavaScript turned on."),
        ("/auth/verify", "Finishing needs JavaScript turned on."),
    ],
)
def test_a_page_that_needs_javascript_says_so(
    device: Any, server: Server, path: str, needs: str
) -> None:
    page = no_script(device).new_page()
    page.goto(path)
    expect(shown(page).locator("p")).to_have_text(needs)
    expect(shown(page).locator("p")).to_be_visible()


def test_the_sign_out_page_signs_out_without_javascript(device: Any, server: Server) -> None:
    context = no_script(device)
    email = server.email("no-script")
    create_account(context, server, email)  # the landing's answer set the session cookie
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")

    sent: list[str] = []
    page.on("request", lambda r: r.is_navigation_request() and sent.append(r.method))
    page.get_by_role("link", name="Sign out").click()
    expect(shown(page).locator("h1")).to_have_text("Sign out?")
    expect(shown(page).locator(".ml-lead")).to_have_text(f"You're signed in as {email}.")
    shown(page).locator("button[type=submit]").click()
    expect(shown(page).locator("h1")).to_have_text("You're signed out")
    assert page.url == server.url + "/auth/sign-out"
    assert sent == ["GET", "POST", "GET"]  # the form's answer was a redirect
    page.reload()
    expect(shown(page).locator("h1")).to_have_text("You're signed out")
    assert sent == ["GET", "POST", "GET", "GET"]

    shown(page).locator("a", has_text="Go to the home page").click()
    expect(page.get_by_test_id("state")).to_contain_text("signed out")
    page.goto("/auth/user")
    page.wait_for_url(f"{server.url}/auth/sign-in?redirect_url=/auth/user")


def test_the_sign_out_page_without_javascript_when_signed_out(device: Any, server: Server) -> None:
    page = no_script(device).new_page()
    page.goto("/auth/sign-out")
    expect(shown(page).locator("h1")).to_have_text("You're signed out")
    expect(shown(page).locator("a", has_text="Sign in again")).to_have_attribute(
        "href", "/auth/sign-in"
    )
    expect(shown(page).locator("button")).to_have_count(0)
