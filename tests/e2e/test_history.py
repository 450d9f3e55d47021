"""Back and forth through the browser's history, as a person presses Back: no page that sends its
visitor on by itself stays in the history to send them on again (a redirect replaces the page),
so Back always leads back, never around in a loop. Signing out says "You're signed out"."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.e2e._steps import (
    confirm_on_other_device,
    create_account,
    lands_signed_in,
    not_this,
    open_account,
    signed_in,
    signing_in,
    start_sign_in,
)
from tests.e2e.conftest import PHONE, Server, serve_demo

SIGN_IN_HEADING = "Sign in to magiclink demo"


def history_length(page: Any) -> int:
    length: int = page.evaluate("history.length")
    return length


def test_back_after_signing_out_leads_back_through_the_app(device: Any, server: Server) -> None:
    email, _, page = signed_in(device, server, "back")
    page.goto("/")
    page.get_by_role("link", name="Open the members-only page").click()
    expect(page.get_by_test_id("protected")).to_contain_text(email)
    length = history_length(page)

    page.get_by_role("link", name="Sign out").click()  # from a page of the app: at once
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in again")).to_have_attribute(
        "href", "/auth/sign-in"
    )
    assert page.url == server.url + "/auth/sign-out"
    assert history_length(page) == length + 1

    # Back: the members-only page, which now sends a signed-out visitor to sign in
    page.go_back()
    page.wait_for_url(re.compile(r"/auth/sign-in\?redirect_url=/protected$"))
    expect(page.get_by_role("heading", name=SIGN_IN_HEADING)).to_be_visible()
    # Back again: the home page, signed out; nothing pushed the visitor forward meanwhile
    page.go_back()
    page.wait_for_url(server.url + "/")
    expect(page.get_by_test_id("state")).to_contain_text("signed out")
    assert history_length(page) == length + 1
    # and Forward retraces the same steps
    page.go_forward()
    page.wait_for_url(re.compile(r"/auth/sign-in\?redirect_url=/protected$"))
    page.go_forward()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()


def test_the_sign_out_page_reached_again_says_so_and_stays(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "again")
    page.goto("/")
    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    page.goto("/")
    page.go_back()  # the sign-out page again, signed out already: it goes nowhere
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    assert page.url == server.url + "/auth/sign-out"
    page.get_by_role("link", name="Sign in again").click()
    expect(page.get_by_role("heading", name=SIGN_IN_HEADING)).to_be_visible()


def test_signing_out_on_the_profile_replaces_it(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "profile-out")
    page.goto("/")
    open_account(page)
    length = history_length(page)
    page.locator("[data-ml-sign-out]").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    page.wait_for_url(server.url + "/auth/sign-out")
    assert history_length(page) == length  # the profile was replaced
    page.go_back()
    page.wait_for_url(server.url + "/")


def test_completing_sign_in_replaces_the_sign_in_page(device: Any, server: Server) -> None:
    email = server.email("forward")
    create_account(device(), server, email)
    page = device().new_page()
    page.goto("/")
    start_sign_in(page, email)
    length = history_length(page)
    page.get_by_label("Code from the email").fill(server.messages_to(email)[-1].email_code)
    page.get_by_role("button", name="Verify code").click()
    lands_signed_in(page, server, email)
    assert history_length(page) == length  # Back leads to the page before sign-in


def test_back_and_reload_on_the_phone_never_send_the_confirm_form_again(
    device: Any, server: Server
) -> None:
    """The confirm form answers with a redirect, a wrong code as well as the right one: the
    phone's history holds only pages it can load again, so Back after "You're all set" shows
    that page again, never the browser's "Confirm Form Resubmission"."""
    email, _, waiting, code = signing_in(device, server, "prg")
    phone = device(PHONE).new_page()
    phone.goto(server.wait_for_link(email, count=2))
    expect(phone.get_by_role("heading", name=re.compile("Did you ask to"))).to_be_visible()
    confirm_on_other_device(phone, not_this(code))
    expect(phone.get_by_role("alert")).to_contain_text("2 tries left")
    assert urlsplit(phone.url).query == "retry=wrong"
    confirm_on_other_device(phone, code)
    done = phone.get_by_role("heading", name="You're all set")
    expect(done).to_be_visible()
    lands_signed_in(waiting, server, email)

    sent: list[str] = []
    phone.on("request", lambda r: r.is_navigation_request() and sent.append(r.method))
    phone.go_back()  # the form as it was after the wrong code: the link is done now
    expect(done).to_be_visible()
    phone.reload()
    expect(done).to_be_visible()
    phone.go_back()  # the form as it was first shown
    expect(done).to_be_visible()
    assert sent == ["GET", "GET", "GET"]  # nothing sent the form again


def test_the_page_of_a_link_failed_by_wrong_codes_is_one_to_come_back_to(
    device: Any, server: Server
) -> None:
    """The last wrong code fails the link, and that answer is a redirect too: the page saying
    so is loaded by GET, so following its way on and pressing Back shows it again, not the
    browser's "Confirm Form Resubmission", and a reload types no code again."""
    email, _, _, code = signing_in(device, server, "prg-dead")
    phone = device(PHONE).new_page()
    phone.goto(server.wait_for_link(email, count=2))
    for left in ("2 tries left", "1 try left"):
        confirm_on_other_device(phone, not_this(code))
        expect(phone.get_by_role("alert")).to_contain_text(left)
    sent: list[str] = []
    phone.on("request", lambda r: r.is_navigation_request() and sent.append(r.method))
    confirm_on_other_device(phone, not_this(code))
    dead = phone.get_by_role("heading", name="This link no longer works")
    expect(dead).to_be_visible()
    assert urlsplit(phone.url).path == "/auth/v1/verify/confirm"
    assert sent == ["POST", "GET"]  # the form, then the page its answer pointed to

    phone.reload()
    expect(dead).to_be_visible()
    phone.get_by_role("link", name="Go to magiclink demo").click()
    phone.wait_for_url(server.url + "/")
    phone.go_back()
    expect(dead).to_be_visible()
    assert sent == ["POST", "GET", "GET", "GET", "GET"]  # the form was sent once


def test_a_signed_in_visitor_of_a_sign_in_component_is_sent_on(device: Any, server: Server) -> None:
    email, _, page = signed_in(device, server, "sent-on")
    page.goto("/protected")
    length = history_length(page)
    page.goto("/examples/components")  # <magiclink-sign-in> in a page of the app
    lands_signed_in(page, server, email)
    assert history_length(page) == length + 1  # the sign-in page was replaced
    page.go_back()
    page.wait_for_url(server.url + "/protected")


def test_a_sign_in_component_does_not_bounce_back_and_forth(device: Any, server: Server) -> None:
    """An app page that sends signed-in people to sign in (its own rule, say a role): the
    component sends the visitor on once, then stays and says so."""
    _, context, page = signed_in(device, server, "bounce")
    sent_back: list[str] = []

    def back_to_sign_in(route: Any) -> None:
        sent_back.append(route.request.url)
        route.fulfill(status=303, headers={"Location": "/examples/components?redirect_url=/admin"})

    context.route(lambda url: urlsplit(url).path == "/admin", back_to_sign_in)
    page.goto("/examples/components?redirect_url=/admin")
    expect(page.get_by_role("heading", name="You're already signed in")).to_be_visible()
    assert page.url == server.url + "/examples/components?redirect_url=/admin"
    assert len(sent_back) == 1
    expect(page.get_by_role("link", name="Continue")).to_have_attribute("href", "/admin")


BOUNCE = "/auth/sign-in?redirect_url=/admin"


def admin_for_nobody(app: Any) -> Any:
    """The demo app inside a host app whose ``/admin`` sends everyone to sign in (its own rule,
    say a role), on the server: a redirect the browser follows on its own."""

    async def host(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/admin":
            headers = [(b"location", BOUNCE.encode()), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return host


def test_the_hosted_sign_in_page_does_not_bounce_back_and_forth(browser: Any) -> None:
    """The same bounce between server redirects, which the browser follows by itself: the
    hosted page sends the visitor on once, then serves the page saying so, instead of a loop
    Chromium gives up on (ERR_TOO_MANY_REDIRECTS)."""
    with serve_demo(wrap=admin_for_nobody) as app:
        context = browser.new_context(base_url=app.url)
        try:
            create_account(context, app, app.email("hosted-bounce"))
            page = context.new_page()
            admin: list[str] = []
            page.on("request", lambda r: urlsplit(r.url).path == "/admin" and admin.append(r.url))
            page.goto(BOUNCE)
            expect(page.get_by_role("heading", name="You're already signed in")).to_be_visible()
            assert page.url == app.url + BOUNCE
            assert len(admin) == 1
            expect(page.get_by_role("link", name="Continue")).to_have_attribute("href", "/admin")
        finally:
            context.close()


def test_the_hosted_sign_in_page_sends_a_signed_in_visitor_on(device: Any, server: Server) -> None:
    email, _, page = signed_in(device, server, "hosted")
    page.goto("/auth/sign-in?redirect_url=/protected")
    page.wait_for_url(server.url + "/protected")
    expect(page.get_by_test_id("protected")).to_contain_text(email)
