"""A double tap on an emailed link in real Chromium, the first tap's answer reaching the browser
last: the browser keeps that answer's session cookie, and the app sees the user on it at once
and for good (not only once the page's script has collected the session again)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Server, serve_demo


class HeldHook:
    """An app's ``sign_up_completed`` hook that waits (a welcome email, an audit call) until the
    test lets it go, and says when a completion reached it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    async def __call__(self, event: Any) -> None:
        self.reached.set()
        await anyio.to_thread.run_sync(lambda: self.release.wait(10))


@pytest.fixture(scope="module")
def hook() -> HeldHook:
    return HeldHook()


@pytest.fixture(scope="module")
def server(hook: HeldHook) -> Iterator[Server]:
    """The demo, its sign-ups held in the hook until the test releases them."""
    with serve_demo() as running:
        running.app.magiclinks.on("sign_up_completed")(hook)
        yield running


def test_a_double_tap_whose_first_answer_comes_last_stays_signed_in(
    device: Any, server: Server, hook: HeldHook
) -> None:
    # a sign-up by the API whose link leads to a page the app renders on the server (no script
    # collects the session there): the session cookie of the answer kept last is all it has
    email = server.email("tap")
    context = device()
    origin = {"Origin": server.url}
    made = context.request.post(
        "/auth/v1/client/sign_ups", data={"email_address": email}, headers=origin
    )
    prepared = context.request.post(
        f"/auth/v1/client/sign_ups/{made.json()['id']}/prepare_verification",
        data={"strategy": "email_link", "redirect_url": server.url + "/"},
        headers=origin,
    )
    assert prepared.ok, prepared.text()
    link = server.wait_for_link(email)
    first, second = context.new_page(), context.new_page()
    landings: list[Any] = []  # the app's answers where the first tap's redirect leads
    first.on(
        "response",
        lambda r: (
            r.request.is_navigation_request()
            and r.url.startswith(server.url + "/?")
            and landings.append(r)
        ),
    )
    first.evaluate("url => { window.location.href = url }", link)  # the first tap, not awaited
    assert hook.reached.wait(5)  # it completed the sign-up; its answer waits on the hook
    second.goto(link)  # the second tap: answered at once, as a repeat, with a fresh token
    expect(second.get_by_role("heading", name="You're signed in")).to_be_visible()
    hook.release.set()
    first.wait_for_url(re.compile(re.escape(server.url) + r"/\?"))
    # the first answer came last: the browser kept its cookie, and the app sees the user on it
    shown = email.replace("@", "@<wbr>")  # the demo lets an address wrap after its "@"
    assert f"Signed in as <strong>{shown}" in landings[0].text()
    server.clock.advance(hours=1)  # long past the grace of the token the repeat replaced
    first.goto("/")
    expect(first.get_by_test_id("state")).to_contain_text(f"Signed in as {email}")
