"""Signing out drops what the browser kept of magiclink (its session and client cookies, and the
site's cache), never the host app's own cookies: a drop-in sign-out must not reset the app's
preferences, consent or cart, nor sign the person out of the other apps of the same domain."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import open_account, signed_in
from tests.e2e.conftest import Server

APP_COOKIE = {"name": "theme", "value": "dark"}


def sign_out_from_the_app(page: Any) -> None:
    page.goto("/")
    page.get_by_role("link", name="Sign out").click()


def sign_out_on_the_account_page(page: Any) -> None:
    open_account(page)
    page.locator("[data-ml-sign-out]").click()


@pytest.mark.parametrize(
    "sign_out",
    [sign_out_from_the_app, sign_out_on_the_account_page],
    ids=["the sign-out page", "the account page"],
)
def test_signing_out_keeps_the_apps_own_cookies(device: Any, server: Server, sign_out: Any) -> None:
    _, context, page = signed_in(device, server, "keeps-cookies")
    context.add_cookies([{**APP_COOKIE, "url": server.url}])
    before = {cookie["name"]: cookie["value"] for cookie in context.cookies()}
    assert {"theme", "magiclink_session", "magiclink_client"} <= before.keys()

    sign_out(page)
    # the account page says so before it moves on to the sign-out page: wait for that page
    page.wait_for_url(server.url + "/auth/sign-out")
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()

    kept = {cookie["name"]: cookie["value"] for cookie in context.cookies()}
    assert kept.get("theme") == "dark", kept
    assert "magiclink_session" not in kept, kept
    # this browser's client is dropped with its session (a page may start a new one)
    assert kept.get("magiclink_client") != before["magiclink_client"], kept
    page.goto("/")
    expect(page.get_by_test_id("state")).to_contain_text("signed out")
