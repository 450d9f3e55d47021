"""What a person does in the browser, shared by the e2e tests: make an account, ask for a link on
the hosted sign-in page, type the code on another device."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from playwright.sync_api import expect

from tests.e2e.conftest import Server


def create_account(context: Any, server: Server, email: str) -> None:
    """Sign up through the API with the context's own cookies: the context ends signed in."""
    origin = {"Origin": server.url}
    r = context.request.post(
        "/auth/v1/client/sign_ups", data={"email_address": email}, headers=origin
    )
    assert r.ok, r.text()
    sign_up = r.json()
    r = context.request.post(
        f"/auth/v1/client/sign_ups/{sign_up['id']}/prepare_verification",
        data={"strategy": "email_link", "redirect_url": server.url + "/"},
        headers=origin,
    )
    assert r.ok, r.text()
    link = server.wait_for_link(email, count=len(server.messages_to(email)))
    page = context.new_page()  # the click comes from the browser (its user agent on the session)
    page.goto(link)
    page.close()


def account(device: Any, server: Server, prefix: str) -> str:
    """A fresh address with an account, made on a device of its own."""
    email = server.email(prefix)
    create_account(device(), server, email)
    return email


def account_and_page(device: Any, server: Server, prefix: str, path: str) -> tuple[str, Any]:
    """A fresh address with an account made on a device of its own, and a page at ``path`` on
    a new device."""
    email = account(device, server, prefix)
    page = device().new_page()
    page.goto(path)
    return email, page


class SignedIn(NamedTuple):
    """An account, the device that made it (signed in), a page on that device."""

    email: str
    context: Any
    page: Any


def signed_in(device: Any, server: Server, prefix: str) -> SignedIn:
    """A fresh account, made on a new device that stays signed in, and a page on it."""
    email = server.email(prefix)
    context = device()
    create_account(context, server, email)
    return SignedIn(email, context, context.new_page())


def open_account(page: Any) -> None:
    """Go to the hosted account page, signed in, and wait until it shows."""
    page.goto("/auth/user")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()


def start_sign_in(page: Any, email: str) -> str:
    """Ask for a link on the hosted sign-in page; returns the code it shows."""
    page.goto("/auth/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()
    code: str = page.locator("[data-ml-code]").inner_text().strip()
    assert re.fullmatch(r"\d{6}", code), code
    return code


class SigningIn(NamedTuple):
    """A sign-in waiting for its link: the address, the device, its page, the code shown."""

    email: str
    context: Any
    page: Any
    code: str


def signing_in(device: Any, server: Server, prefix: str) -> SigningIn:
    """An account made elsewhere, and a new device whose sign-in page waits for the link (the
    account's second email)."""
    email = account(device, server, prefix)
    context = device()
    page = context.new_page()
    return SigningIn(email, context, page, start_sign_in(page, email))


def wait_requests(page: Any) -> list[str]:
    """The URLs of the long-poll waits ``page`` sends from now on (a list that grows)."""
    waits: list[str] = []
    page.on("request", lambda r: "wait=" in r.url and waits.append(r.url))
    return waits


def lands_signed_in(page: Any, server: Server, email: str) -> None:
    """``page`` goes on to the app's home page, which says ``email`` is signed in."""
    page.wait_for_url(server.url + "/")
    expect(page.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")


def not_this(code: str) -> str:
    """A well-formed code that is not ``code``: a wrong guess."""
    return "000000" if code != "000000" else "111111"


def confirm_on_other_device(page: Any, code: str) -> None:
    """The landing's confirm page (served by the middleware): type the code, confirm."""
    field = page.get_by_label(re.compile("code", re.I))
    field.fill(code)
    field.press("Enter")


def lines_spanned(element: Any, text: str) -> int:
    """How many rendered lines the last occurrence of ``text`` inside ``element`` (a locator)
    spans, however many text nodes (split by a ``<wbr>``, say) it runs across."""
    return int(
        element.evaluate(
            """(el, text) => {
                const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
                const nodes = [];
                while (walker.nextNode()) nodes.push(walker.currentNode);
                let at = nodes.map((n) => n.data).join("").lastIndexOf(text);
                if (at < 0) throw new Error(`${text} is not in ${el.outerHTML}`);
                let end = at + text.length, start = null, stop = null;
                for (const n of nodes) {
                    if (start === null && at < n.data.length) start = [n, at];
                    if (stop === null && end <= n.data.length) stop = [n, end];
                    at -= n.data.length; end -= n.data.length;
                }
                const range = document.createRange();
                range.setStart(...start);
                range.setEnd(...stop);
                return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
            }""",
            text,
        )
    )
