"""Every hosted page, signed out and signed in, leaves Chromium's console clean: no error logged,
no uncaught exception, no request that failed or was answered with an error (a signed-out page
asks nothing that answers 401; the icon is declared, so nobody asks for /favicon.ico). The one
error status allowed is a not-found page's own 404."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import create_account
from tests.e2e._watch import Console
from tests.e2e.conftest import Server

APP = "magiclink demo"

# path -> (the heading it settles on, signed out; signed in). {n}: an email in the mailbox.
PAGES: dict[str, tuple[str, str]] = {
    "/auth/sign-in": (f"Sign in to {APP}", APP),  # signed in: sent on to the home page
    "/auth/sign-up": (f"Create your {APP} account", "Welcome, "),
    "/auth/user": (f"Sign in to {APP}", "Your account"),
    "/auth/verify": ("This link didn't work", "This link didn't work"),
    "/auth/sign-out": ("You're signed out", "Sign out?"),  # typed in: it asks first
    "/auth/no-such-page": ("Page not found", "Page not found"),
    "/auth/dev/mailbox": ("Development mailbox", "Development mailbox"),
    "/auth/dev/mailbox/{n}": (f"Finish signing up for {APP}", f"Finish signing up for {APP}"),
}


@pytest.mark.parametrize("signed_in", [False, True], ids=["signed-out", "signed-in"])
@pytest.mark.parametrize("path", list(PAGES))
def test_a_hosted_page_logs_nothing(
    device: Any, server: Server, path: str, signed_in: bool
) -> None:
    context = device()
    email = server.email("console")
    # an account (and so an email in the mailbox), made on this device or another one
    create_account(context if signed_in else device(), server, email)
    number = len(server.mailer.outbox)
    url = path.format(n=number)
    page = context.new_page()
    console = Console(page)
    if path == "/auth/no-such-page":
        console.expect(server.url + url, 404)

    page.goto(url)
    heading = PAGES[path][signed_in]
    expect(page.get_by_role("heading", name=re.compile("^" + re.escape(heading)))).to_be_visible()
    assert console.settle() == []
    # the icon is declared by every page, and served
    icon = page.locator("link[rel=icon]")
    expect(icon).to_have_count(1)
    assert page.request.get(icon.get_attribute("href")).ok


def test_the_demo_answers_for_its_favicon(device: Any, server: Server) -> None:
    response = device().request.get("/favicon.ico")
    assert response.ok
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.body().startswith(b"<svg")


def test_a_signed_out_page_asks_nothing_that_answers_401(device: Any, server: Server) -> None:
    """The client learns who is signed in from one answer that is 200 either way."""
    page = device().new_page()
    asked: list[str] = []
    page.on("request", lambda r: "/auth/v1/" in r.url and asked.append(r.url))
    page.goto("/auth/sign-in")
    expect(page.get_by_label("Email address")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert asked == [server.url + "/auth/v1/client"]
