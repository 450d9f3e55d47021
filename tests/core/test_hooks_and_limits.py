"""Hooks (events and vetoes), the link-rate limit, and concurrent clicks through the service."""

from datetime import timedelta

import anyio
import anyio.lowlevel
import pytest

from magiclink_core import (
    AuthEvent,
    Event,
    MagicLinkError,
    NotAllowedError,
    RateLimitedError,
    SignUp,
)
from magiclink_core.ports import Insert

from ._support import make_world, signed_up

pytestmark = pytest.mark.anyio


async def test_events_fire_after_each_step() -> None:
    world = make_world()
    seen: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        seen.append(event)

    for event in Event:
        world.links.on(event, record)
    client, token = await signed_up(world)
    session = await world.links.require_session(token)
    added = await world.links.add_email_address(session, "work@example.org")
    await world.links.prepare_email_verification(session, added.id, redirect_url="/")
    await world.links.verify_link(world.last_link("work@example.org"), client)
    await world.links.end_session(session.id, client=client)
    kinds = [e.event for e in seen]
    assert kinds == [
        Event.USER_CREATED,
        Event.SIGN_UP_COMPLETED,
        Event.SESSION_CREATED,
        Event.EMAIL_ADDRESS_ADDED,
        Event.EMAIL_ADDRESS_VERIFIED,
        Event.SESSION_ENDED,
    ]
    assert seen[0].user_id == session.user_id and seen[0].email_address == "ann@example.org"
    assert seen[2].session_id == session.id


async def test_a_failing_event_hook_does_not_undo_the_change() -> None:
    world = make_world()

    async def broken(event: AuthEvent) -> None:
        raise RuntimeError("hook bug")

    world.links.on("user_created", broken)
    _, token = await signed_up(world)
    assert await world.links.authenticate(token) is not None


async def test_a_veto_refuses_before_anything_is_stored_or_sent() -> None:
    world = make_world()

    async def company_only(email: str) -> bool:
        return email.endswith("@example.org")

    world.links.before_sign_up(company_only)
    world.links.before_sign_in(company_only)
    client = await world.client()
    for call in (
        world.links.create_sign_up(client, "eve@evil.example"),
        world.links.create_sign_in(client, "eve@evil.example"),
    ):
        with pytest.raises(NotAllowedError) as caught:
            await call
        assert caught.value.code == "not_allowed"
    state = await world.links.client_state(client)
    assert state.sign_up is None and state.sign_in is None and world.mailer.outbox == []
    assert (await world.links.create_sign_up(client, "ann@example.org")).email_address


async def test_a_veto_may_raise_its_own_message() -> None:
    world = make_world()

    async def closed(email: str) -> None:
        raise NotAllowedError(long_message="Sign-ups are closed this week.")

    world.links.before_sign_up(closed)
    with pytest.raises(NotAllowedError) as caught:
        await world.links.create_sign_up(await world.client(), "ann@example.org")
    assert caught.value.long_message == "Sign-ups are closed this week."


async def test_too_many_links_to_one_address_are_refused_with_a_retry_time() -> None:
    world = make_world(links_per_address=3, links_per_address_window=timedelta(minutes=10))
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    for _ in range(3):
        await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    with pytest.raises(RateLimitedError) as caught:
        await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert timedelta(0) < caught.value.retry_after <= timedelta(minutes=10)
    assert len(world.mailer.outbox) == 3
    world.clock.advance(minutes=10)
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert len(world.mailer.outbox) == 4


async def test_a_hundred_concurrent_clicks_complete_once() -> None:
    world = make_world(cross_device="allow")
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    token = world.last_link("ann@example.org")
    clickers = [await world.client() for _ in range(100)]
    wins, losses = [], []

    async def click(n: int) -> None:
        try:
            wins.append(await world.links.verify_link(token, clickers[n]))
        except MagicLinkError as exc:
            losses.append(exc.code)

    async with anyio.create_task_group() as group:
        for n in range(100):
            group.start_soon(click, n)
    assert len(wins) == 1 and len(losses) == 99 and set(losses) == {"failed"}
    assert len(await world.links.list_sessions(wins[0].session.user_id)) == 1


async def test_bad_input_leaves_no_half_made_records() -> None:
    world = make_world()
    client = await world.client()
    before = {k: dict(v) for k, v in world.storage._records.items()}
    for bad in ("", "not-an-email", "Ann <ann@example.org>", None, 7):
        with pytest.raises(Exception) as caught:
            await world.links.create_sign_up(client, bad)
        assert getattr(caught.value, "code", None) == "invalid_email_address"
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    snapshot = await world.storage.get(SignUp, sign_up.id)
    for bad_url in ("//evil.example", "javascript:alert(1)", "https://evil.example/"):
        with pytest.raises(Exception) as caught:
            await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url=bad_url)
        assert getattr(caught.value, "code", None) == "redirect_url_not_allowed"
    assert await world.storage.get(SignUp, sign_up.id) == snapshot
    assert world.mailer.outbox == []
    assert before.keys() <= world.storage._records.keys()


async def test_a_record_written_twice_is_refused_by_storage_not_overwritten() -> None:
    world = make_world()
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    from magiclink_core.ports import WriteConflict

    with pytest.raises(WriteConflict):
        await world.storage.apply([Insert(sign_up)])


async def test_closing_releases_the_notifier_and_the_storage() -> None:
    closed: list[str] = []
    world = make_world()

    async def close_storage() -> None:
        closed.append("storage")

    async def close_notifier() -> None:
        closed.append("notifier")

    world.storage.close = close_storage  # type: ignore[method-assign]
    world.links.notifier.close = close_notifier  # type: ignore[method-assign]
    async with world.links:
        pass
    assert closed == ["notifier", "storage"]


async def test_the_periodic_purge_removes_expired_records_and_survives_a_failure() -> None:
    from magiclink_core import Link

    world = make_world(link_ttl=timedelta(minutes=10), purge_grace=timedelta(days=1))
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    prepared = await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    link_id = prepared.verification.link_id
    world.clock.advance(days=1, minutes=11)
    calls = []
    original = world.storage.purge

    async def flaky_purge(now, *, limit=1000):  # type: ignore[no-untyped-def]
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return await original(now, limit=limit)

    world.storage.purge = flaky_purge  # type: ignore[method-assign]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(world.links.purge_periodically, timedelta(seconds=0))
            while await world.storage.get(Link, link_id) is not None:
                await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
    assert len(calls) >= 2  # the failed round was followed by another


async def test_a_sync_hook_is_refused_when_registered() -> None:
    world = make_world()

    def sync_event(event: AuthEvent) -> None:
        pass

    def sync_veto(email: str) -> bool:
        return True

    with pytest.raises(TypeError, match="async"):
        world.links.on("user_created", sync_event)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async"):
        world.links.before_sign_in(sync_veto)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        world.links.on("no_such_event", lambda e: None)  # type: ignore[arg-type,return-value]
    # nothing was registered: a sign-up still runs
    await signed_up(world)


async def test_on_works_as_a_decorator() -> None:
    world = make_world()
    created: list[str | None] = []

    @world.links.on("user_created")
    async def remember(event: AuthEvent) -> None:
        created.append(event.email_address)

    await signed_up(world, "ann@example.org")
    assert created == ["ann@example.org"]
    assert callable(remember)  # the decorator hands the function back
