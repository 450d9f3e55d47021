"""Waiting for an attempt: woken by the click, ended by timeout, expiry or cancel."""

import time
from datetime import timedelta
from functools import partial

import anyio
import pytest

from magiclink_core import SignInStatus, VerificationStatus

from ._support import make_world, signed_up

pytestmark = pytest.mark.anyio


async def prepared_sign_in(world):  # type: ignore[no-untyped-def]
    await signed_up(world)
    starter = await world.client()
    sign_in = await world.links.create_sign_in(starter, "ann@example.org")
    sign_in = await world.links.prepare_first_factor(starter, sign_in.id, redirect_url="/")
    return starter, sign_in, world.last_link("ann@example.org")


async def test_a_waiter_is_woken_by_the_click_at_once() -> None:
    # a long poll interval: only the notifier can wake the waiter in time
    world = make_world(cross_device="allow", wait_poll_interval=timedelta(seconds=60))
    starter, sign_in, token = await prepared_sign_in(world)
    phone = await world.client()
    woken_after: list[float] = []

    async def wait() -> None:
        start = time.perf_counter()
        result = await world.links.wait_for_sign_in(
            starter, sign_in.id, timeout=timedelta(seconds=10)
        )
        woken_after.append(time.perf_counter() - start)
        assert result.status is SignInStatus.COMPLETE

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        await world.links.verify_link(token, phone)
    assert woken_after and woken_after[0] < 1.0


async def test_a_wait_times_out_with_the_unchanged_attempt() -> None:
    world = make_world(wait_poll_interval=timedelta(milliseconds=20))
    starter, sign_in, _ = await prepared_sign_in(world)
    result = await world.links.wait_for_sign_in(
        starter, sign_in.id, timeout=timedelta(milliseconds=60)
    )
    assert result.version == sign_in.version and result.status is SignInStatus.NEEDS_FIRST_FACTOR


async def test_a_wait_returns_at_once_when_the_change_already_happened() -> None:
    world = make_world()
    starter, sign_in, token = await prepared_sign_in(world)
    await world.links.verify_link(token, starter)
    with anyio.fail_after(1):
        result = await world.links.wait_for_sign_in(
            starter, sign_in.id, since_version=sign_in.version
        )
    assert result.status is SignInStatus.COMPLETE


async def test_a_wait_ends_when_the_link_expires() -> None:
    world = make_world(link_ttl=timedelta(seconds=30), wait_poll_interval=timedelta(seconds=60))
    starter, sign_in, _ = await prepared_sign_in(world)
    world.clock.advance(seconds=31)
    with anyio.fail_after(1):
        result = await world.links.wait_for_sign_in(starter, sign_in.id)
    assert result.verification is not None
    assert result.verification.status is VerificationStatus.EXPIRED


async def test_a_wait_on_an_expired_link_is_held_until_a_resend_from_elsewhere() -> None:
    """The waiting device showing "expired" waits on: told the caller saw it expired, the wait
    is held (not answered at once, which would spin), and the resend of the link from another
    device ends it with the attempt's new, unverified verification."""
    world = make_world(link_ttl=timedelta(seconds=30), wait_poll_interval=timedelta(seconds=60))
    starter, sign_in, token = await prepared_sign_in(world)
    world.clock.advance(seconds=31)
    expired = await world.links.wait_for_sign_in(starter, sign_in.id)  # over: at once
    assert expired.verification is not None
    assert expired.verification.status is VerificationStatus.EXPIRED
    results = []

    async def wait() -> None:
        results.append(
            await world.links.wait_for_sign_in(
                starter,
                sign_in.id,
                timeout=timedelta(seconds=10),
                since_version=expired.version,
                since_status=VerificationStatus.EXPIRED,
            )
        )

    with anyio.fail_after(2):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert results == []  # held, and no timer wakes it
            await world.links.resend_link(token)
    renewed = results[0].verification
    assert renewed is not None and renewed.status is VerificationStatus.UNVERIFIED
    assert renewed.link_id != expired.verification.link_id
    assert results[0].version > expired.version


async def test_a_wait_told_of_a_status_no_longer_true_answers_at_once() -> None:
    """A caller that last saw the link unverified hears at once that it expired since (a
    stale view is never held), and one that saw it expired hears of a new version at once."""
    world = make_world(link_ttl=timedelta(seconds=30), wait_poll_interval=timedelta(seconds=60))
    starter, sign_in, token = await prepared_sign_in(world)
    world.clock.advance(seconds=31)
    with anyio.fail_after(1):
        result = await world.links.wait_for_sign_in(
            starter,
            sign_in.id,
            since_version=sign_in.version,
            since_status=VerificationStatus.UNVERIFIED,
        )
    assert result.verification is not None
    assert result.verification.status is VerificationStatus.EXPIRED
    await world.links.resend_link(token)
    with anyio.fail_after(1):
        result = await world.links.wait_for_sign_in(
            starter,
            sign_in.id,
            since_version=sign_in.version,
            since_status=VerificationStatus.EXPIRED,
        )
    assert result.verification is not None
    assert result.verification.status is VerificationStatus.UNVERIFIED


async def test_cancel_ends_the_wait_cleanly() -> None:
    world = make_world(wait_poll_interval=timedelta(seconds=60))
    starter, sign_in, _ = await prepared_sign_in(world)
    cancelled = anyio.Event()
    results = []

    async def wait() -> None:
        results.append(
            await world.links.wait_for_sign_in(
                starter, sign_in.id, timeout=timedelta(seconds=30), cancelled=cancelled
            )
        )

    with anyio.fail_after(2):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            cancelled.set()
    assert results[0].status is SignInStatus.NEEDS_FIRST_FACTOR


async def test_cancelling_the_task_cancels_the_wait_and_leaves_no_subscriber() -> None:
    world = make_world(wait_poll_interval=timedelta(seconds=60))
    starter, sign_in, _ = await prepared_sign_in(world)
    subscribers = world.links.notifier._subscribers  # type: ignore[attr-defined]
    async with anyio.create_task_group() as group:
        group.start_soon(
            partial(world.links.wait_for_sign_in, timeout=timedelta(seconds=30)),
            starter,
            sign_in.id,
        )
        await anyio.wait_all_tasks_blocked()
        assert subscribers  # the wait is parked
        group.cancel_scope.cancel()
    assert subscribers == {}


async def test_only_the_starting_client_may_wait() -> None:
    from magiclink_core import NotFoundError

    world = make_world()
    _, sign_in, _ = await prepared_sign_in(world)
    stranger = await world.client()
    with pytest.raises(NotFoundError):
        await world.links.wait_for_sign_in(stranger, sign_in.id, timeout=timedelta(seconds=1))
    # the ownership check is the wait's one read, made once subscribed: refused, it leaves no
    # subscription behind
    assert world.links.notifier._subscribers == {}  # type: ignore[attr-defined]


async def test_a_wait_on_an_address_ends_when_the_address_is_removed() -> None:
    """The account page waiting on an added address's link, in this tab or another: removing
    the address ends that wait at once (not found), not at the wait's timeout, and a wait
    asked for afterwards is refused at once."""
    from magiclink_core import NotFoundError

    # a long poll interval: only the notifier can end the wait in time
    world = make_world(wait_poll_interval=timedelta(seconds=60))
    _, token = await signed_up(world)
    session = await world.links.require_session(token)
    added = await world.links.add_email_address(session, "work@example.org")
    added = await world.links.prepare_email_verification(session, added.id, redirect_url="/p")
    outcome: list[BaseException] = []

    async def wait() -> None:
        try:
            await world.links.wait_for_email_address(
                session, added.id, timeout=timedelta(seconds=30), since_version=added.version
            )
        except NotFoundError as exc:
            outcome.append(exc)

    with anyio.fail_after(10):  # a hang's bound; the wait itself would last 30 s
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await world.links.remove_email_address(session, added.id)
    assert len(outcome) == 1
    assert world.links.notifier._subscribers == {}  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        await world.links.wait_for_email_address(session, added.id, timeout=timedelta(seconds=1))
