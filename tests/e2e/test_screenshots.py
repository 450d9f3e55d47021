"""Each hosted page at desktop (1280x800) and phone (390x844) width: nothing overflows
sideways, every control has a name, and a screenshot is taken. With MAGICLINK_SCREENSHOTS=1 the
screenshots are written to docs/screenshots/ (the README shows them); otherwise to a temp dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import create_account, start_sign_in
from tests.e2e.conftest import DESKTOP, PHONE, Server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# readable addresses in the pictures: a sign-up of an existing address signs its owner in
ADA = "ada@example.com"
SECOND = iter(["ada@work.example", "ada@home.example", "ada@lab.example", "ada@club.example"])


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("MAGICLINK_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("screenshots")


def check_layout(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"
    unnamed = page.evaluate(
        """[...document.querySelectorAll('button, input, a[href]')].filter(el => {
            if (el.closest('[hidden]') || el.type === 'hidden') return false;
            const label = el.labels && el.labels.length ? el.labels[0].textContent : '';
            return !(el.getAttribute('aria-label') || label || el.textContent.trim()
                     || el.getAttribute('title'));
        }).map(el => el.outerHTML)"""
    )
    assert unnamed == [], unnamed


Setup = Callable[[Any, Server, Any], None]  # (page, server, make_device): bring the page up


def opened(path: str, heading: str) -> Setup:
    """A page that needs nothing but opening: ``path``, once ``heading`` shows."""

    def setup(page: Any, server: Server, make_device: Any) -> None:
        page.goto(path)
        expect(page.get_by_role("heading", name=heading)).to_be_visible()

    return setup


def ada_signing_in(page: Any, server: Server, make_device: Any) -> None:
    """Ada's account, made on another device, and her sign-in waiting on ``page``."""
    create_account(make_device(), server, ADA)
    start_sign_in(page, ADA)


def waiting_page(page: Any, server: Server, make_device: Any) -> None:
    ada_signing_in(page, server, make_device)
    page.mouse.move(0, 0)


def profile_page(page: Any, server: Server, make_device: Any) -> None:
    create_account(page.context, server, ADA)
    page.goto("/auth/user")
    page.get_by_label("Add an email address").fill(next(SECOND))
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text("Check your email")).to_be_visible()
    page.locator("h1").focus()


def confirm_page(page: Any, server: Server, make_device: Any) -> None:
    """The landing's page on the second device (served by the middleware)."""
    ada_signing_in(make_device().new_page(), server, make_device)
    page.goto(server.wait_for_link(ADA, count=len(server.messages_to(ADA))))
    expect(page.get_by_label("Code shown on the other device")).to_be_visible()


def expired_page(page: Any, server: Server, make_device: Any) -> None:
    """The waiting page once its link expired (the clock moved), offering a new one."""
    ada_signing_in(page, server, make_device)
    server.clock.advance(minutes=11)
    expect(page.get_by_role("heading", name="Your link and code have expired")).to_be_visible()


PAGES: dict[str, Setup] = {
    "sign-in": opened("/auth/sign-in", "Sign in to magiclink demo"),
    "check-email": waiting_page,
    "sign-up": opened("/auth/sign-up", "Create your magiclink demo account"),
    "profile": profile_page,
    "confirm": confirm_page,
    # where a verification link opened in the same browser ends
    "email-verified": opened(
        "/auth/verify?flow=email_address&__magiclink_status=verified", "Email address verified"
    ),
    "expired": expired_page,
    "mailbox": opened("/auth/dev/mailbox", "Development mailbox"),
}


@pytest.mark.parametrize("name", list(PAGES))
@pytest.mark.parametrize(("width", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_page_at_width(
    device: Any, server: Server, out_dir: Path, name: str, width: str, viewport: dict[str, int]
) -> None:
    context = device(viewport=viewport, reduced_motion="reduce", color_scheme="light")
    page = context.new_page()
    PAGES[name](page, server, device)
    check_layout(page)
    page.screenshot(path=str(out_dir / f"{name}-{width}.png"), full_page=name != "mailbox")
