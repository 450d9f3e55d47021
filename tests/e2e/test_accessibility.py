"""axe-core on every hosted page and every page of the link's landing, in each state a person
meets, in light and dark colour schemes, at desktop (1280x800) and phone (390x844) size. Any
violation fails the test, named with the element and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e._axe import require_axe, violations
from tests.e2e._steps import (
    account,
    confirm_on_other_device,
    create_account,
    not_this,
    signing_in,
)
from tests.e2e.conftest import DESKTOP, PHONE, Server

APP = "magiclink demo"
Setup = Callable[[Any, Server, Any], None]  # (page, server, make_device): bring the page up


def heading(page: Any, name: str) -> None:
    expect(page.get_by_role("heading", name=re.compile("^" + re.escape(name)))).to_be_visible()


def opened(path: str, name: str) -> Setup:
    def setup(page: Any, server: Server, make_device: Any) -> None:
        page.goto(path)
        heading(page, name)

    return setup


def signed_in_at(path: str, name: str) -> Setup:
    """``path`` opened by a signed-in visitor."""

    def setup(page: Any, server: Server, make_device: Any) -> None:
        create_account(page.context, server, server.email("axe"))
        page.goto(path)
        heading(page, name)

    return setup


def refused_address(page: Any, server: Server, make_device: Any) -> None:
    page.goto("/auth/sign-in")
    page.get_by_label("Email address").fill("ada@@example.com")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_be_visible()


def asked_for_a_link(page: Any, server: Server, make_device: Any) -> str:
    """The sign-in page of an account made on another device, once it asked for a link.
    Returns the address."""
    email = account(make_device, server, "axe")
    page.goto("/auth/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    heading(page, "Check your email")
    return email


def waiting(page: Any, server: Server, make_device: Any) -> str:
    """The sign-in page once the email is sent: the code field and the confirmation code.
    Returns the code in the email."""
    email = asked_for_a_link(page, server, make_device)
    server.wait_for_link(email, count=2)
    code: str = server.messages_to(email)[-1].email_code
    return code


def wrong_email_code(page: Any, server: Server, make_device: Any) -> None:
    code = waiting(page, server, make_device)
    page.get_by_label("Code from the email").fill(not_this(code))
    page.get_by_role("button", name="Verify code").click()
    expect(page.get_by_role("alert")).to_be_visible()


def expired(page: Any, server: Server, make_device: Any) -> None:
    waiting(page, server, make_device)
    server.clock.advance(minutes=11)
    heading(page, "Your link and code have expired")


def other_tab(page: Any, server: Server, make_device: Any) -> None:
    email = asked_for_a_link(page, server, make_device)
    page.context.new_page().goto(server.wait_for_link(email, count=2))
    heading(page, "You signed in on another tab")


def profile(page: Any, server: Server, make_device: Any) -> None:
    """The profile with a second address waiting for its email (code field and all)."""
    create_account(page.context, server, server.email("axe"))
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill(server.email("axe-second"))
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_label("Code from the email")).to_be_visible()


def profile_address_refused(page: Any, server: Server, make_device: Any) -> None:
    """The profile once the server refused an address to add: the error under the field."""
    create_account(page.context, server, server.email("axe"))
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill("ada@@example.com")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()


def replaced(page: Any, server: Server, make_device: Any) -> None:
    """A sign-in whose place another tab's sign-in took."""
    asked_for_a_link(page, server, make_device)
    other = page.context.new_page()
    other.goto("/auth/sign-in")
    other.get_by_role("button", name="Use a different email").click()
    other.get_by_label("Email address").fill(account(make_device, server, "axe"))
    other.get_by_role("button", name="Continue").click()
    heading(page, "You started another sign-in in another tab")
    other.close()


def already_signed_in(page: Any, server: Server, make_device: Any) -> None:
    """The component's card for a signed-in visitor it cannot send on (it would bounce)."""
    create_account(page.context, server, server.email("axe"))
    page.context.route(
        lambda url: urlsplit(url).path == "/admin",
        lambda route: route.fulfill(
            status=303, headers={"Location": "/examples/components?redirect_url=/admin"}
        ),
    )
    page.goto("/examples/components?redirect_url=/admin")
    heading(page, "You're already signed in")


def mailbox_message(page: Any, server: Server, make_device: Any) -> None:
    create_account(make_device(), server, server.email("axe"))
    page.goto(f"/auth/dev/mailbox/{len(server.mailer.outbox)}")
    heading(page, f"Finish signing up for {APP}")


# -- the landing (served by the middleware, no script) ------------------------------------------


def landing_confirm(page: Any, server: Server, make_device: Any) -> str:
    """The link opened on another device: the page asking for the code. Returns the code."""
    email, _, _, code = signing_in(make_device, server, "axe")
    page.goto(server.wait_for_link(email, count=2))
    heading(page, "Did you ask to")
    return code


def landing_wrong_code(page: Any, server: Server, make_device: Any) -> None:
    code = landing_confirm(page, server, make_device)
    confirm_on_other_device(page, not_this(code))
    expect(page.get_by_role("alert")).to_be_visible()


def landing_done(page: Any, server: Server, make_device: Any) -> None:
    confirm_on_other_device(page, landing_confirm(page, server, make_device))
    heading(page, "You're all set")


def landing_failed(page: Any, server: Server, make_device: Any) -> None:
    page.goto("/auth/v1/verify?token=mll1_" + "A" * 43)
    expect(page.locator("h1")).to_be_visible()


def landing_missing(page: Any, server: Server, make_device: Any) -> None:
    page.goto("/auth/v1/verify")
    expect(page.locator("h1")).to_be_visible()


def landing_expired(page: Any, server: Server, make_device: Any) -> None:
    """An expired link opened on another device: its page offers a new one."""
    email, _, _, _ = signing_in(make_device, server, "axe")
    link = server.wait_for_link(email, count=2)
    server.clock.advance(minutes=11)
    page.goto(link)
    expect(page.get_by_role("button", name="Email me a new link")).to_be_visible()


def landing_sent(page: Any, server: Server, make_device: Any) -> None:
    landing_expired(page, server, make_device)
    page.get_by_role("button", name="Email me a new link").click()
    expect(page.get_by_role("button", name="Email me a new link")).to_have_count(0)
    expect(page.locator("h1")).to_be_visible()


PAGES: dict[str, Setup] = {
    # hosted pages
    "sign-in": opened("/auth/sign-in", f"Sign in to {APP}"),
    "sign-in, address refused": refused_address,
    "sign-up": opened("/auth/sign-up", f"Create your {APP} account"),
    "check your email": waiting,
    "check your email, wrong code": wrong_email_code,
    "expired": expired,
    "signed in on another tab": other_tab,
    "already signed in": already_signed_in,
    "profile": profile,
    "profile, address refused": profile_address_refused,
    "started again in another tab": replaced,
    "verify: failed": opened("/auth/verify", "This link didn't work"),
    "verify: expired": opened(
        "/auth/verify?flow=sign_in&__magiclink_status=expired", "Your link has expired"
    ),
    "verify: other device": opened(
        "/auth/verify?flow=sign_in&__magiclink_status=verified", "You're signed in on your"
    ),
    "verify: email address": opened(
        "/auth/verify?flow=email_address&__magiclink_status=verified", "Email address verified"
    ),
    "sign out?": signed_in_at("/auth/sign-out", "Sign out?"),
    "signed out": opened("/auth/sign-out", "You're signed out"),
    "not found": opened("/auth/no-such-page", "Page not found"),
    "mailbox": opened("/auth/dev/mailbox", "Development mailbox"),
    "mailbox message": mailbox_message,
    # the link's landing
    "landing: confirm": landing_confirm,
    "landing: wrong code": landing_wrong_code,
    "landing: done": landing_done,
    "landing: failed": landing_failed,
    "landing: no token": landing_missing,
    "landing: expired, with resend": landing_expired,
    "landing: sent": landing_sent,
}

VARIANTS = [
    (scheme, size_name, size)
    for scheme in ("light", "dark")
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE))
]


@pytest.mark.parametrize("name", list(PAGES))
def test_no_accessibility_violation(device: Any, server: Server, name: str) -> None:
    require_axe()
    page = device(viewport=DESKTOP, reduced_motion="reduce").new_page()
    PAGES[name](page, server, device)
    found: dict[str, list[str]] = {}
    for scheme, size_name, size in VARIANTS:
        page.set_viewport_size(size)
        page.emulate_media(color_scheme=scheme)
        problems = violations(page)
        if problems:
            found[f"{scheme}, {size_name}"] = problems
    assert found == {}, f"{name} at {page.url}"


def test_axe_finds_what_it_is_asked_to_find(device: Any, server: Server) -> None:
    """The engine is loaded and judging: white text on a light accent is a contrast failure."""
    require_axe()
    page = device().new_page()
    page.goto("/auth/sign-in")
    heading(page, f"Sign in to {APP}")
    assert violations(page) == []
    page.evaluate(
        """() => { const b = document.querySelector('button[type=submit]');
                   b.style.background = '#8b93ff'; b.style.color = '#ffffff'; }"""
    )
    found = violations(page)
    assert len(found) == 1 and found[0].startswith("color-contrast (serious)"), found
