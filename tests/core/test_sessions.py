"""Sessions: fresh token per sign-in, idle timeout, lifetime, cheap checks, end, revoke."""

from datetime import timedelta

import pytest

from magiclink_core import NotFoundError, Session, SessionStatus, UnauthenticatedError
from magiclink_core.domain.models import Session as SessionRecord

from ._support import World, make_world, signed_up

pytestmark = pytest.mark.anyio


async def test_idle_sessions_expire_and_activity_keeps_them_alive() -> None:
    world = make_world(session_idle_timeout=timedelta(days=7), session_lifetime=timedelta(days=30))
    _, token = await signed_up(world)
    for _ in range(4):  # active every 6 days: alive past the idle timeout
        world.clock.advance(days=6)
        assert await world.links.authenticate(token) is not None
    world.clock.advance(days=7)
    assert await world.links.authenticate(token) is None


async def test_the_absolute_lifetime_ends_even_a_busy_session() -> None:
    world = make_world(session_idle_timeout=timedelta(days=7), session_lifetime=timedelta(days=30))
    _, token = await signed_up(world)
    for _ in range(29):
        world.clock.advance(days=1)
        assert await world.links.authenticate(token) is not None
    world.clock.advance(days=1)
    assert await world.links.authenticate(token) is None


async def test_checking_a_session_writes_at_most_once_per_touch_interval() -> None:
    world = make_world(session_touch_interval=timedelta(minutes=1))
    _, token = await signed_up(world)
    first = await world.links.authenticate(token)
    assert first is not None
    writes = []
    original = world.storage.apply

    async def counting(changes):  # type: ignore[no-untyped-def]
        writes.append(changes)
        await original(changes)

    world.storage.apply = counting  # type: ignore[method-assign]
    for _ in range(90):
        world.clock.advance(seconds=1)
        assert await world.links.authenticate(token) is not None
    assert len(writes) == 1  # 90 requests a second apart: one touch, at the minute
    stored = await world.storage.get(SessionRecord, first.id)
    assert stored is not None and stored.last_active_at > first.last_active_at


@pytest.mark.parametrize("junk", [None, "", "x", "mls1_" + "A" * 43, "mll1_" + "A" * 43])
async def test_junk_session_tokens_are_no_session(junk: str | None, world: World) -> None:
    assert await world.links.authenticate(junk) is None
    with pytest.raises(UnauthenticatedError):
        await world.links.require_session(junk)


async def test_sign_out_ends_the_session_for_good(world: World) -> None:
    client, token = await signed_up(world)
    session = await world.links.require_session(token)
    ended = await world.links.end_session(session.id, client=client)
    assert ended.status is SessionStatus.ENDED
    assert await world.links.authenticate(token) is None
    stranger = await world.client()
    _, other_token = await signed_up(world, "bob@example.org")
    bob = await world.links.require_session(other_token)
    with pytest.raises(NotFoundError):
        await world.links.end_session(bob.id, client=stranger)
    assert await world.links.authenticate(other_token) is not None


async def test_revoke_all_sessions_of_a_user(world: World) -> None:
    _, t1 = await signed_up(world)
    client2 = await world.client()
    sign_in = await world.links.create_sign_in(client2, "ann@example.org")
    await world.links.prepare_first_factor(client2, sign_in.id, redirect_url="/")
    result = await world.links.verify_link(world.last_link("ann@example.org"), client2)
    t2 = result.session_token
    user_id = (await world.links.require_session(t1)).user_id
    assert len(await world.links.list_sessions(user_id)) == 2
    assert await world.links.revoke_sessions(user_id) == 2
    assert await world.links.authenticate(t1) is None and await world.links.authenticate(t2) is None
    assert await world.links.list_sessions(user_id) == []


async def test_activating_a_session_rotates_its_token_and_ends_the_clients_others(
    world: World,
) -> None:
    client, first_token = await signed_up(world)
    first = await world.links.require_session(first_token)
    sign_in = await world.links.create_sign_in(client, "ann@example.org")
    await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    result = await world.links.verify_link(world.last_link("ann@example.org"), client)
    assert result.session is not None
    _session, token = await world.links.activate_session(client, result.session.id)
    assert token != result.session_token
    assert await world.links.authenticate(result.session_token) is None  # rotated away
    assert isinstance(await world.links.authenticate(token), Session)
    old = await world.storage.get(SessionRecord, first.id)
    assert old is not None and old.status is SessionStatus.ENDED


async def test_client_state_shows_live_sessions_and_attempts(world: World) -> None:
    client, token = await signed_up(world)
    state = await world.links.client_state(client)
    assert [s.id for s in state.sessions] == [(await world.links.require_session(token)).id]
    assert state.sign_up is not None and state.sign_in is None
    world.clock.advance(days=8)
    assert (await world.links.client_state(client)).sessions == []
