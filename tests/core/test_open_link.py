"""Opening a link (``MagicLinks.open_link``, the landing's GET): what inspecting then verifying
would do, on one read of the link, and nothing changed unless the opener may complete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from magiclink_core import (
    Client,
    CrossDevicePolicy,
    LinkPreview,
    LinkResult,
    MagicLinkError,
    SignInStatus,
)
from magiclink_core.domain.models import Link
from magiclink_core.domain.models import Session as SessionRecord
from magiclink_core.ports import Change, R

from ._support import BASE_URL, ReadsByKind, World, make_world, signed_up

pytestmark = pytest.mark.anyio
BOUND = 20  # seconds: only to catch a hang
DONE = f"{BASE_URL}/done"


class HeldWrites(ReadsByKind):
    """``hold_writes``: each write waits until the link has been read that many times (two
    taps that both read before either writes)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_writes = 0
        self._link_read = anyio.Event()

    async def get(self, kind: type[R], id: str) -> R | None:
        found = await super().get(kind, id)
        if kind is Link:
            self._link_read.set()
        return found

    async def apply(self, changes: Sequence[Change]) -> None:
        with anyio.fail_after(BOUND):
            while self.gets["Link"] < self.hold_writes:
                self._link_read = read = anyio.Event()
                await read.wait()
        await super().apply(changes)


def held_world() -> tuple[World, HeldWrites]:
    storage = HeldWrites()
    return make_world(storage), storage


async def started(world: World, email: str = "ann@example.org") -> tuple[Client, str, str]:
    """An account for ``email``, then a sign-in on a new browser, its link emailed: the
    browser, the sign-in's id and the link's token."""
    await signed_up(world, email)
    browser = await world.client()
    sign_in = await world.links.create_sign_in(browser, email)
    await world.links.prepare_first_factor(browser, sign_in.id, redirect_url="/done")
    return browser, sign_in.id, world.last_link(email)


async def version_of(world: World, browser: Client, sign_in_id: str) -> int:
    return (await world.links.get_sign_in(browser, sign_in_id)).version


async def test_the_browser_that_asked_signs_in_on_one_read_of_the_link() -> None:
    world, storage = held_world()
    browser, sign_in_id, token = await started(world)
    storage.gets.clear()
    result = await world.links.open_link(token, browser)
    assert isinstance(result, LinkResult) and not result.repeated
    assert result.verified_from_the_same_client and result.redirect_url == DONE
    assert result.session_token is not None
    live = await world.links.authenticate(result.session_token)
    assert live is not None and result.session is not None and live.id == result.session.id
    # inspect_link then verify_link would read the link and its sign-in twice each
    assert storage.gets["Link"] == 1 and storage.gets["SignIn"] == 1
    done = await world.links.get_sign_in(browser, sign_in_id)
    assert done.status is SignInStatus.COMPLETE


@pytest.mark.parametrize("policy", list(CrossDevicePolicy))
async def test_another_device_or_a_scanner_opening_it_changes_nothing(
    policy: CrossDevicePolicy,
) -> None:
    world = make_world(cross_device=policy)
    browser, sign_in_id, token = await started(world)
    before = await version_of(world, browser, sign_in_id)
    phone = await world.client()
    for opener in (phone, None, phone):
        if policy is CrossDevicePolicy.DENY:
            with pytest.raises(MagicLinkError) as refused:
                await world.links.open_link(token, opener)
            assert refused.value.code == "client_mismatch"
            assert refused.value.redirect_url is None  # strangers are not sent into the app
        else:
            preview = await world.links.open_link(token, opener)
            assert isinstance(preview, LinkPreview) and preview.needs_confirmation
            assert preview.needs_code is (policy is CrossDevicePolicy.CONFIRM)
            assert not preview.same_client and preview.redirect_url == DONE
    # not even deny's mismatch is recorded on a GET: the link still works where it was asked
    assert await version_of(world, browser, sign_in_id) == before
    result = await world.links.open_link(token, browser)
    assert isinstance(result, LinkResult) and result.session_token is not None


async def test_opened_again_it_answers_the_same_sign_in_with_a_fresh_token() -> None:
    world = make_world()
    browser, _, token = await started(world)
    first = await world.links.open_link(token, browser)
    again = await world.links.open_link(token, browser)
    assert isinstance(first, LinkResult) and isinstance(again, LinkResult)
    assert again.repeated and not first.repeated
    assert first.session is not None and again.session is not None
    assert again.session.id == first.session.id
    assert again.session_token is not None and again.session_token != first.session_token
    live = await world.links.authenticate(again.session_token)
    assert live is not None and live.id == first.session.id
    # a used link opened by anyone else: refused, and not sent back into the app
    with pytest.raises(MagicLinkError) as refused:
        await world.links.open_link(token, await world.client())
    assert refused.value.code == "failed" and refused.value.redirect_url is None


async def test_an_expired_link_opened_sends_its_own_browser_back_to_the_app() -> None:
    world = make_world()
    browser, sign_in_id, token = await started(world)
    world.clock.advance(seconds=world.links.settings.link_ttl.total_seconds())
    before = await version_of(world, browser, sign_in_id)
    with pytest.raises(MagicLinkError) as refused:
        await world.links.open_link(token, browser)
    assert refused.value.code == "expired" and refused.value.redirect_url == DONE
    assert await version_of(world, browser, sign_in_id) == before


async def test_a_double_tap_read_twice_before_either_writes_makes_one_session() -> None:
    world, storage = held_world()
    browser, _, token = await started(world)
    storage.gets.clear()
    storage.hold_writes = 2  # the first tap's write waits until the second read the link
    results: list[LinkPreview | LinkResult[Any]] = []

    async def tap() -> None:
        results.append(await world.links.open_link(token, browser))

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as taps:
            taps.start_soon(tap)
            taps.start_soon(tap)
    assert all(isinstance(r, LinkResult) for r in results)
    done = [r for r in results if isinstance(r, LinkResult)]
    assert sorted(r.repeated for r in done) == [False, True]  # the loser read again: used
    assert done[0].session is not None and done[1].session is not None
    assert done[0].session.id == done[1].session.id
    assert storage.gets["Link"] == 3
    repeated = next(r for r in done if r.repeated)  # its fresh token is the session's now
    assert repeated.session_token is not None
    assert await world.links.authenticate(repeated.session_token) is not None


async def test_a_double_tap_whose_first_answer_comes_last_stays_signed_in() -> None:
    # a browser keeps the cookie of the answer that reaches it last; the first tap's answer
    # waits for the app's hook (a welcome email, an audit call) while the second tap is
    # answered as a repeat with a fresh token for the same session
    world = make_world()
    browser, _, token = await started(world)
    second_answered = anyio.Event()

    @world.links.on("sign_in_completed")
    async def slow_hook(event: Any) -> None:
        await second_answered.wait()

    answers: list[LinkPreview | LinkResult[Any]] = []

    async def tap() -> None:
        answers.append(await world.links.open_link(token, browser))
        second_answered.set()

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as taps:
            taps.start_soon(tap)
            await anyio.wait_all_tasks_blocked()  # the first tap is in its hook
            taps.start_soon(tap)
    last = answers[-1]
    assert isinstance(last, LinkResult) and not last.repeated  # the first tap's, arriving last
    assert last.session_token is not None
    assert await world.links.authenticate(last.session_token) is not None
    world.clock.advance(hours=1)  # long past the grace: the cookie the browser kept still works
    assert await world.links.authenticate(last.session_token) is not None


async def test_a_repeat_by_a_browser_signed_in_to_that_session_writes_nothing() -> None:
    # a Back or a reload of the link: the cookie the browser has works, so it is kept
    world = make_world()
    browser, _, token = await started(world)
    first = await world.links.open_link(token, browser)
    assert isinstance(first, LinkResult) and first.session_token is not None
    signed_in = await world.links.authenticate(first.session_token)
    assert signed_in is not None
    again = await world.links.open_link(token, browser, signed_in=signed_in)
    confirmed = await world.links.verify_link(token, browser, signed_in=signed_in)
    for answer in (again, confirmed):
        assert isinstance(answer, LinkResult) and answer.repeated
        assert answer.session_token is None and answer.session == signed_in
    assert await world.storage.get(SessionRecord, signed_in.id) == signed_in  # nothing written
    world.clock.advance(hours=1)  # no token was replaced: none has a grace to run out
    assert await world.links.authenticate(first.session_token) is not None


async def test_a_repeat_signed_in_elsewhere_still_gets_a_token_for_its_own_session() -> None:
    world = make_world()
    _, other_token = await signed_up(world, "bob@example.org")
    other = await world.links.authenticate(other_token)
    browser, _, token = await started(world)
    first = await world.links.open_link(token, browser)
    assert isinstance(first, LinkResult) and first.session is not None
    again = await world.links.open_link(token, browser, signed_in=other)
    assert isinstance(again, LinkResult) and again.repeated
    assert again.session is not None and again.session.id == first.session.id
    assert again.session_token is not None
    assert await world.links.authenticate(again.session_token) is not None
    junk: Any = "sess_not_a_session"  # whatever an app passes that is no Session: not signed in
    anyhow = await world.links.open_link(token, browser, signed_in=junk)
    assert isinstance(anyhow, LinkResult) and anyhow.session_token is not None
