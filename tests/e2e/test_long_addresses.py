"""A long email address on a 320 px wide phone: every page that shows one wraps it inside the
page instead of making the page scroll sideways (or cutting the address off). The demo's own
pages are checked in ``test_demo_pages.py``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import create_account, lines_spanned, not_this, start_sign_in
from tests.e2e.conftest import Server

NARROW = {"width": 320, "height": 640}
# one unbreakable word, as long as real addresses get
LONG = "averyveryverylongemailaddressforeverypage{n}@subdomain.example-company-name.com"
# as long before the "@", with a domain that fits a line but has no hyphen to break at
LONG_LOCAL = "averyveryverylongemailaddressforeverypage{n}@example.org"

Setup = Callable[[Any, Server, Any, str], None]  # (page, server, make_device, address)


def long_address(server: Server, form: str = LONG) -> str:
    return form.format(n=re.sub(r"\D", "", server.email("n"))[-9:])


def signing_in(page: Any, server: Server, make_device: Any, email: str) -> None:
    create_account(make_device(), server, email)
    start_sign_in(page, email)


def expired(page: Any, server: Server, make_device: Any, email: str) -> None:
    signing_in(page, server, make_device, email)
    server.clock.advance(minutes=11)
    expect(page.get_by_role("heading", name="Your link and code have expired")).to_be_visible()


def landing_confirm(page: Any, server: Server, make_device: Any, email: str) -> None:
    signing_in(make_device(NARROW).new_page(), server, make_device, email)
    page.goto(server.wait_for_link(email, count=2))
    expect(page.get_by_role("heading", name=re.compile("Did you ask to"))).to_be_visible()


def landing_wrong_code(page: Any, server: Server, make_device: Any, email: str) -> None:
    landing_confirm(page, server, make_device, email)
    field = page.get_by_label("Code shown on the other device")
    field.fill(not_this("000000"))
    field.press("Enter")
    expect(page.get_by_role("alert")).to_be_visible()


def profile(page: Any, server: Server, make_device: Any, email: str) -> None:
    """Signed in as the long address, a second long one added and waiting for its email."""
    create_account(page.context, server, email)
    page.goto("/auth/user")
    second = "second" + email
    page.get_by_label("Add an email address").fill(second)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(f'[data-email="{second}"]')).to_contain_text("Check your email")
    expect(page.get_by_role("status").filter(has_text=f"We sent a link and a code to {second}"))


def sign_out_question(page: Any, server: Server, make_device: Any, email: str) -> None:
    create_account(page.context, server, email)
    page.goto("/auth/sign-out")
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()


def already_signed_in(page: Any, server: Server, make_device: Any, email: str) -> None:
    create_account(page.context, server, email)
    page.context.route(
        lambda url: urlsplit(url).path == "/admin",
        lambda route: route.fulfill(
            status=303, headers={"Location": "/examples/components?redirect_url=/admin"}
        ),
    )
    page.goto("/examples/components?redirect_url=/admin")
    expect(page.get_by_role("heading", name="You're already signed in")).to_be_visible()


def mailbox(page: Any, server: Server, make_device: Any, email: str) -> None:
    create_account(make_device(), server, email)
    page.goto("/auth/dev/mailbox")
    expect(page.get_by_text(email)).to_be_visible()


def mailbox_message(page: Any, server: Server, make_device: Any, email: str) -> None:
    create_account(make_device(), server, email)
    page.goto(f"/auth/dev/mailbox/{len(server.mailer.outbox)}")
    expect(page.get_by_role("heading", name=re.compile("Finish signing up"))).to_be_visible()
    page.get_by_text("Plain-text version").click()  # the email as sent, opened


PAGES: dict[str, Setup] = {
    "check your email": signing_in,
    "expired": expired,
    "landing: confirm": landing_confirm,
    "landing: wrong code": landing_wrong_code,
    "profile, an address waiting": profile,
    "sign out?": sign_out_question,
    "already signed in": already_signed_in,
    "mailbox": mailbox,
    "mailbox message": mailbox_message,
}


@pytest.mark.parametrize("name", list(PAGES))
def test_a_long_address_wraps_on_a_320_px_phone(device: Any, server: Server, name: str) -> None:
    page = device(NARROW).new_page()
    email = long_address(server)
    PAGES[name](page, server, device, email)
    assert email in page.locator("body").inner_text()
    scroll = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert scroll <= 0, f"{name} scrolls sideways by {scroll}px"
    # nor is anything cut off at the right edge (a box that hides its overflow scrolls not)
    cut = page.evaluate(
        """() => [...document.body.querySelectorAll('*')].filter(el => {
            const box = el.getBoundingClientRect();
            return box.width > 0 && box.right > window.innerWidth + 0.5;
        }).map(el => el.outerHTML.slice(0, 100))"""
    )
    assert cut == [], name


@pytest.mark.parametrize("name", list(PAGES))
def test_a_long_address_breaks_after_its_at_sign_not_inside_its_domain(
    device: Any, server: Server, name: str
) -> None:
    """The address too long for a line breaks after its "@" (the domain kept whole) before it
    breaks anywhere: "...page1234@" then "example.org", not "...@example.o" then "rg"."""
    page = device(NARROW).new_page()
    email = long_address(server, LONG_LOCAL)
    PAGES[name](page, server, device, email)
    shown = page.locator(".ml-email").filter(has_text="@example.org")
    expect(shown.first).to_be_visible()
    spans = {
        shown.nth(i).inner_text(): lines_spanned(shown.nth(i), "example.org")
        for i in range(shown.count())
    }
    assert email in spans, f"{name} shows no .ml-email of {email}: {spans}"
    assert set(spans.values()) == {1}, f"{name}: lines each domain spans {spans}"


def test_the_account_pages_status_line_breaks_a_long_address_after_its_at_sign(
    device: Any, server: Server
) -> None:
    """The account page says what it did in a status line under its heading ("We sent a link
    and a code to ..."): the address there breaks after its "@" too, as in the rows below."""
    page = device(NARROW).new_page()
    email = long_address(server, LONG_LOCAL)
    profile(page, server, device, email)
    status = page.locator("[data-ml-live]")
    expect(status).to_contain_text(f"We sent a link and a code to second{email}.")
    # at every width where the domain (and the full stop after it) fits a line, wherever the
    # line would otherwise end in the address
    fits = status.evaluate(
        """(el) => {
            const text = [...el.querySelectorAll("*"), el].flatMap((n) => [...n.childNodes])
                .find((n) => n.nodeType === Node.TEXT_NODE && n.data.includes("example.org"));
            const range = document.createRange();
            range.setStart(text, text.data.indexOf("example.org"));
            range.setEnd(text, text.data.length);
            const tail = el.lastChild;  // the full stop after the address
            range.setEnd(tail, tail.length ?? tail.childNodes.length);
            const style = getComputedStyle(el);
            const around = ["paddingLeft", "paddingRight", "borderLeftWidth", "borderRightWidth"]
                .reduce((sum, side) => sum + parseFloat(style[side]), 0);
            return Math.ceil(range.getBoundingClientRect().width + around);
        }"""
    )
    split = []
    for width in range(fits + 1, 290, 3):
        status.evaluate("(el, width) => { el.style.width = `${width}px`; }", width)
        if lines_spanned(status, "example.org") != 1:
            split.append(width)
    assert split == [], f"the domain is split at widths {split}"
