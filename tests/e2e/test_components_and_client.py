"""The custom elements in a page of the app, and the JS client driving custom pages written like
the guide's examples (``/examples/...`` of the demo app)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e._steps import (
    account,
    account_and_page,
    confirm_on_other_device,
    lands_signed_in,
    not_this,
    signed_in,
    wait_requests,
)
from tests.e2e.conftest import Server


def _continue_in_the_element(page: Any, email: str) -> Any:
    """Type ``email`` into the page's <magiclink-sign-in> and go on: the element."""
    element = page.locator("magiclink-sign-in")
    element.get_by_label("Email address").fill(email)
    element.get_by_role("button", name="Continue").click()
    return element


def _sign_in_on_the_custom_page(page: Any, email: str) -> None:
    """The guide's custom sign-in page, asked for a link for ``email``."""
    page.goto("/examples/custom-sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Sign in with magic link").click()


def _sign_up_on_the_custom_page(device: Any, email: str) -> Any:
    """The guide's custom sign-up page on a new device, asked for a link for ``email``."""
    page = device().new_page()
    page.goto("/examples/custom-sign-up")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Sign up with magic link").click()
    expect(page.get_by_role("status")).to_have_text("Check your email")
    return page


def _add_on_the_custom_page(page: Any, email: str) -> None:
    """The guide's add-an-address page, adding ``email``: it waits for the verification."""
    page.goto("/examples/add-email")
    page.get_by_label("New email address").fill(email)
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("status")).to_have_text("Waiting for verification...")


def test_the_sign_in_element_needs_no_configuration(device: Any, server: Server) -> None:
    email = account(device, server, "element")
    context = device()
    page = context.new_page()
    page.goto("/examples/components")
    element = page.locator("magiclink-sign-in")
    expect(element.get_by_role("heading", name="Sign in to magiclink demo")).to_be_visible()
    # it found its prefix from its module URL and its stylesheet by itself
    assert page.evaluate(
        "[...document.styleSheets].some(s => (s.href || '').includes('/auth/static/magiclink.css'))"
    )
    _continue_in_the_element(page, email)
    expect(element.get_by_role("heading", name="Check your email")).to_be_visible()
    events = page.evaluate_handle(
        "() => { const seen = []; document.addEventListener('magiclink:state',"
        " e => seen.push(e.detail.state)); return seen; }"
    )
    tab = context.new_page()
    tab.goto(server.wait_for_link(email, count=2))
    expect(element.get_by_role("heading", name="You signed in on another tab")).to_be_visible()
    assert "other-tab" in events.json_value()


def test_the_sign_in_element_takes_the_code_without_knowing_its_length(
    device: Any, server: Server
) -> None:
    # no email-code-length: 6 to 10 digits
    email, page = account_and_page(device, server, "elementcode", "/examples/components")
    element = _continue_in_the_element(page, email)
    field = element.get_by_label("Code from the email", exact=True)
    expect(element.get_by_text("The code in the email, typed on this device.")).to_be_visible()
    field.fill("12345")
    element.get_by_role("button", name="Verify code").click()
    expect(element.get_by_role("alert")).to_have_text(
        "Type the code from the email: 6 to 10 digits."
    )
    field.fill(_newest_code(server, email))
    element.get_by_role("button", name="Verify code").click()
    lands_signed_in(page, server, email)


def test_the_sign_in_element_follows_redirect_url_only_on_this_site(
    device: Any, server: Server
) -> None:
    # the URL parser drops a tab, so "/<TAB>/elsewhere.invalid/" would lead to another site
    email = account(device, server, "offsite")
    page = device().new_page()
    page.route(re.compile(r"^https?://elsewhere\.invalid/"), lambda r: r.fulfill(body="gone"))
    page.goto("/examples/components?redirect_url=/%09/elsewhere.invalid/")
    element = _continue_in_the_element(page, email)
    code = element.locator("[data-ml-code]")
    expect(code).to_have_text(re.compile(r"^\d{6}$"))
    phone = device().new_page()
    phone.goto(server.wait_for_link(email, count=2))
    confirm_on_other_device(phone, code.inner_text())
    page.wait_for_url(re.compile(r"^https?://[^/]+/(\?.*)?$"))
    assert page.url == server.url + "/"


def test_custom_sign_in_page_on_the_js_client_cross_device(device: Any, server: Server) -> None:
    email = account(device, server, "custom")
    page = device().new_page()
    _sign_in_on_the_custom_page(page, email)
    expect(page.get_by_role("status")).to_have_text("Check your email")
    code = page.get_by_test_id("code")
    expect(code).to_have_text(re.compile(r"^\d{6}$"))

    phone = device().new_page()
    phone.goto(server.wait_for_link(email, count=2))
    confirm_on_other_device(phone, code.inner_text())
    expect(phone.get_by_role("heading", name="You're all set")).to_be_visible()
    # the waiting page resolved startMagicLinkFlow, called setSession and navigated
    page.wait_for_url(server.url + "/protected")
    expect(page.get_by_test_id("protected")).to_contain_text(email)


def test_custom_sign_in_same_browser_and_verification_page(device: Any, server: Server) -> None:
    email = account(device, server, "customtab")
    context = device()
    page = context.new_page()
    _sign_in_on_the_custom_page(page, email)
    expect(page.get_by_test_id("code")).to_have_text(re.compile(r"\d{6}"))
    tab = context.new_page()
    tab.goto(server.wait_for_link(email, count=2))
    # handleMagicLinkVerification activated the session and went to redirectUrlComplete
    tab.wait_for_url(server.url + "/protected")
    # verifiedFromTheSameClient() on the waiting page
    expect(page.get_by_role("status")).to_have_text("Signed in on other tab")


def test_cancel_stops_waiting(device: Any, server: Server) -> None:
    email = account(device, server, "cancel")
    page = device().new_page()
    waits = wait_requests(page)
    _sign_in_on_the_custom_page(page, email)
    expect(page.get_by_test_id("code")).to_have_text(re.compile(r"\d{6}"))
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_have_text("Cancelled")
    before = len(waits)
    # time passing is what this checks (no event marks "nothing happened"): a retry after a
    # cancel would come within the client's first backoff (500 ms, with jitter up to 600)
    page.wait_for_timeout(800)
    assert len(waits) == before


def test_custom_sign_up_page(device: Any, server: Server) -> None:
    email = server.email("customup")
    page = _sign_up_on_the_custom_page(device, email)
    page.goto(server.wait_for_link(email))
    page.wait_for_url(server.url + "/protected")
    expect(page.get_by_test_id("protected")).to_contain_text(email)


def test_custom_page_adds_an_email_with_use_magic_link(device: Any, server: Server) -> None:
    _, _, page = signed_in(device, server, "adder")
    extra = server.email("added")
    _add_on_the_custom_page(page, extra)
    other = device().new_page()  # opened on another device: confirm with the code
    other.goto(server.wait_for_link(extra))
    code = page.evaluate(
        "async () => (await (await fetch('/auth/v1/me')).json()).email_addresses"
        ".find(e => !e.verified).verification.confirmation_code"
    )
    confirm_on_other_device(other, code)
    expect(page.get_by_role("status")).to_have_text(f"Verified {extra}", timeout=2000)


def test_errors_are_typed(device: Any, server: Server) -> None:
    page = device().new_page()
    page.goto("/examples/components")
    result = page.evaluate(
        """async () => {
        const m = await import('/auth/static/magiclink.js');
        const ml = await m.MagicLink.load();
        const out = {codes: m.MagicLinkErrorCode};
        out.isLinkError = m.isMagicLinkError(new m.MagicLinkError(m.MagicLinkErrorCode.Expired));
        out.plainIsNot = m.isMagicLinkError(new Error('x'));
        try { await ml.client.signIn.create({identifier: 'nope'}); }
        catch (e) { out.api = {name: e.name, status: e.status, code: e.code}; }
        history.replaceState(null, '', '/examples/components?__magiclink_status=expired');
        try { await ml.handleMagicLinkVerification({}); }
        catch (e) { out.handled = {link: m.isMagicLinkError(e), code: e.code}; }
        out.urlAfter = location.search;
        // the app's own query, as the landing appends to it, stays byte for byte
        history.replaceState(null, '',
          '/examples/components?sig=%ff&flag&a=1;b=2&__magiclink_status=failed#top');
        try { await ml.handleMagicLinkVerification({}); } catch (e) {}
        out.appUrlAfter = location.search + location.hash;
        out.signedIn = ml.isSignedIn;
        return out;
    }"""
    )
    assert result["codes"] == {
        "Expired": "expired",
        "Failed": "failed",
        "ClientMismatch": "client_mismatch",
    }
    assert result["isLinkError"] is True and result["plainIsNot"] is False
    assert result["api"]["name"] == "APIError" and result["api"]["status"] in (400, 422)
    assert result["api"]["code"] == "invalid_email_address"
    assert result["handled"] == {"link": True, "code": "expired"}
    assert result["urlAfter"] == ""  # the status is taken out of the URL
    assert result["appUrlAfter"] == "?sig=%ff&flag&a=1;b=2#top"  # and nothing else
    assert result["signedIn"] is False


def _newest_code(server: Server, email: str) -> str:
    code = server.messages_to(email)[-1].email_code
    assert code, f"no code in the email to {email}"
    return str(code)


def test_client_attempt_first_factor_completes_the_waiting_flow(
    device: Any, server: Server
) -> None:
    email, page = account_and_page(device, server, "jscode", "/examples/components")
    started = page.evaluate(
        """async (email) => {
        const m = await import('/auth/static/magiclink.js');
        const ml = window.ml = await m.MagicLink.load();
        window.heard = [];
        ml.addListener((c) => window.heard.push(c.isSignedIn));
        const signIn = ml.client.signIn;
        await signIn.create({ identifier: email });
        const { startMagicLinkFlow } = signIn.createMagicLinkFlow();
        window.settled = null;
        let prepared;
        const sent = new Promise((resolve) => { prepared = resolve; });
        window.flow = startMagicLinkFlow({ redirectUrl: '/examples/verification',
          onPrepared: prepared });
        window.flow.then((res) => { window.settled = res.status; });
        await sent;
        return {
          factors: signIn.supportedFirstFactors.map((f) => f.strategy),
          carried: signIn.firstFactorVerification.supportedStrategies,
        };
    }""",
        email,
    )
    assert started == {
        "factors": ["email_link", "email_code"],
        "carried": ["email_link", "email_code"],
    }
    code = _newest_code(server, email)
    wrong = page.evaluate(
        """async (code) => {
        try { await window.ml.client.signIn.attemptFirstFactor({ strategy: 'email_code', code }); }
        catch (e) {
          return { name: e.name, status: e.status, code: e.code, left: e.meta.attemptsLeft,
                   message: e.message, settled: window.settled,
                   status_: window.ml.client.signIn.firstFactorVerification.status };
        }
    }""",
        not_this(code),
    )
    assert wrong == {
        "name": "APIError",
        "status": 422,
        "code": "email_code_incorrect",
        "left": 4,
        "message": "That is not the code we emailed. 4 tries left.",
        "settled": None,  # the wait goes on
        "status_": "unverified",
    }
    done = page.evaluate(
        """async (code) => {
        const ml = window.ml;
        const signIn = ml.client.signIn;
        const res = await signIn.attemptFirstFactor({ strategy: 'email_code', code });
        const after = { same: res === signIn, status: res.status, signedIn: ml.isSignedIn,
          session: ml.session && ml.session.id === res.createdSessionId,
          user: ml.user.primaryEmailAddress.emailAddress, heard: [...window.heard] };
        const flowed = await window.flow;   // startMagicLinkFlow resolves too
        after.flowSame = flowed === signIn;
        after.verification = flowed.firstFactorVerification.status;
        // typed here: not "on another tab", so the guide's code goes on to setSession
        after.otherTab = flowed.firstFactorVerification.verifiedFromTheSameClient();
        return after;
    }""",
        code,
    )
    assert done == {
        "same": True,
        "status": "complete",
        "signedIn": True,
        "session": True,
        "user": email,
        "heard": [True],
        "flowSame": True,
        "verification": "verified",
        "otherTab": False,
    }
    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")


def test_client_a_spent_verification_is_failed_and_read_back(device: Any, server: Server) -> None:
    email, page = account_and_page(device, server, "jsspent", "/examples/components")
    page.evaluate(
        """async (email) => {
        const m = await import('/auth/static/magiclink.js');
        const ml = window.ml = await m.MagicLink.load();
        const signIn = ml.client.signIn;
        await signIn.create({ identifier: email });
        // a code-only email for this sign-in (no redirect needed), and the wait on it
        const { startMagicLinkFlow } = signIn.createMagicLinkFlow();
        let prepared;
        const sent = new Promise((resolve) => { prepared = resolve; });
        window.flow = startMagicLinkFlow({ strategy: 'email_code', onPrepared: prepared });
        await sent;
        window.carried = signIn.firstFactorVerification.supportedStrategies;
    }""",
        email,
    )
    code = _newest_code(server, email)
    assert "/auth/v1/verify?token=" not in server.messages_to(email)[-1].text
    result = page.evaluate(
        """async (wrong) => {
        const signIn = window.ml.client.signIn;
        const errors = [];
        for (let i = 0; i < 5; i++) {
          try { await signIn.attemptFirstFactor({ strategy: 'email_code', code: wrong }); }
          catch (e) { errors.push([e.code, e.status, e.meta.attemptsLeft ?? null]); }
        }
        const waited = await window.flow;  // the wait ends: the verification failed
        return { carried: window.carried, errors,
                 status: signIn.firstFactorVerification.status, waited: waited.status,
                 signedIn: window.ml.isSignedIn };
    }""",
        not_this(code),
    )
    assert result == {
        "carried": ["email_code"],
        "errors": [
            ["email_code_incorrect", 422, 4],
            ["email_code_incorrect", 422, 3],
            ["email_code_incorrect", 422, 2],
            ["email_code_incorrect", 422, 1],
            ["failed", 422, None],
        ],
        "status": "failed",  # read back after the throw
        "waited": "needs_first_factor",
        "signedIn": False,
    }
    # the right code comes too late: the verification is spent
    late = page.evaluate(
        """async (code) => {
        try { await window.ml.client.signIn.attemptFirstFactor({ strategy: 'email_code', code }); }
        catch (e) { return [e.code, e.status]; }
    }""",
        code,
    )
    assert late == ["failed", 422]


def test_custom_pages_sign_up_and_add_an_email_with_the_code(device: Any, server: Server) -> None:
    email = server.email("customcode")
    extra = server.email("customextra")
    page = _sign_up_on_the_custom_page(device, email)
    field = page.get_by_label("Code from the email")
    expect(field).to_be_visible()  # shown once the email is sent
    code = _newest_code(server, email)
    field.fill(not_this(code))
    page.get_by_role("button", name="Sign up with the code").click()
    expect(page.get_by_role("alert")).to_contain_text("4 tries left")
    field.fill(code)
    page.get_by_role("button", name="Sign up with the code").click()
    # signUp.attemptEmailAddressVerification resolved the waiting flow: setSession, navigate
    page.wait_for_url(server.url + "/protected")
    expect(page.get_by_test_id("protected")).to_contain_text(email)

    _add_on_the_custom_page(page, extra)
    expect(page.get_by_label("Code from the email")).to_be_visible()
    page.get_by_label("Code from the email").fill(_newest_code(server, extra))
    page.get_by_role("button", name="Verify with the code").click()
    # emailAddress.attemptVerification resolved useMagicLink's flow
    expect(page.get_by_role("status")).to_have_text(f"Verified {extra}")


def test_custom_sign_in_page_with_the_code(device: Any, server: Server) -> None:
    email = account(device, server, "customsignin")
    page = device().new_page()
    _sign_in_on_the_custom_page(page, email)
    expect(page.get_by_test_id("code")).to_have_text(re.compile(r"^\d{6}$"))  # email sent
    page.get_by_label("Code from the email").fill(_newest_code(server, email))
    page.get_by_role("button", name="Sign in with the code").click()
    page.wait_for_url(server.url + "/protected")
    expect(page.get_by_test_id("protected")).to_contain_text(email)
