"""Sessions: fresh token per sign-in, idle timeout, lifetime, cheap checks, end, revoke."""

from datetime import timedelta

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magiclink_core import (
    Client,
    NotFoundError,
    Session,
    SessionStatus,
    UnauthenticatedError,
)
from magiclink_core.domain.models import Session as SessionRecord
from magiclink_core.domain.tokens import TokenPurpose

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
    world.clock.advance(world.links.settings.session_token_grace)
    assert await world.links.authenticate(result.session_token) is None  # rotated away
    assert isinstance(await world.links.authenticate(token), Session)
    old = await world.storage.get(SessionRecord, first.id)
    assert old is not None and old.status is SessionStatus.ENDED


async def rotated(world: World) -> tuple[Client, Session, str, str]:
    """A signed-up client whose session was given a new token: the client, the session, the
    token it had and the new one."""
    client, replaced = await signed_up(world)
    session = await world.links.require_session(replaced)
    session, token = await world.links.activate_session(client, session.id)
    return client, session, replaced, token


async def test_a_replaced_token_works_for_the_grace_only() -> None:
    world = make_world(session_token_grace=timedelta(minutes=1))
    _, session, replaced, token = await rotated(world)
    world.clock.advance(seconds=59)
    assert await world.links.authenticate(token) == await world.storage.get(
        SessionRecord, session.id
    )
    world.clock.advance(seconds=1)
    assert await world.links.authenticate(replaced) is None
    assert await world.links.authenticate(token) is not None


async def test_a_replaced_token_presented_in_its_grace_is_the_sessions_token_again() -> None:
    # the browser kept the older answer's cookie: it must not be signed out a minute later
    world = make_world(session_token_grace=timedelta(minutes=1))
    _, session, replaced, token = await rotated(world)
    world.clock.advance(seconds=30)
    readopted = await world.links.authenticate(replaced)
    assert readopted is not None and readopted.id == session.id
    stored = await world.storage.get(SessionRecord, session.id)
    assert stored is not None and stored.previous_token_until == world.clock.now() + timedelta(
        minutes=1
    )  # the other token, for a request already on its way
    world.clock.advance(minutes=1)
    assert await world.links.authenticate(token) is None
    for _ in range(3):
        world.clock.advance(days=1)
        assert await world.links.authenticate(replaced) == await world.storage.get(
            SessionRecord, session.id
        )


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    kept=st.sampled_from(["replaced", "new"]),
    first_use=st.integers(min_value=0, max_value=180),  # seconds after the new token
    later=st.integers(min_value=0, max_value=3 * 24 * 3600),
)
def test_the_cookie_a_browser_kept_works_for_good_when_first_used_in_the_grace(
    kept: str, first_use: int, later: int
) -> None:
    # a double tap's two answers reach the browser in either order; it keeps the last cookie
    async def scenario() -> None:
        world = make_world(session_token_grace=timedelta(minutes=1))
        _, _session, replaced, token = await rotated(world)
        cookie, other = (replaced, token) if kept == "replaced" else (token, replaced)
        world.clock.advance(seconds=first_use)
        works = await world.links.authenticate(cookie) is not None
        assert works == (kept == "new" or first_use < 60)
        world.clock.advance(seconds=later)
        assert (await world.links.authenticate(cookie) is not None) == works
        if works:  # the token it gave up is dead once its grace is over
            world.clock.advance(minutes=1)
            assert await world.links.authenticate(other) is None

    anyio.run(scenario)


async def test_a_replaced_token_stops_with_its_session() -> None:
    world = make_world()
    client, session, replaced, token = await rotated(world)
    await world.links.end_session(session.id, client=client)
    assert await world.links.authenticate(replaced) is None
    assert await world.links.authenticate(token) is None


async def test_with_no_grace_a_replaced_token_stops_at_once() -> None:
    world = make_world(session_token_grace=timedelta(0))
    _, session, replaced, token = await rotated(world)
    assert await world.links.authenticate(replaced) is None
    assert await world.links.authenticate(token) is not None
    stored = await world.storage.get(SessionRecord, session.id)
    assert stored is not None and stored.previous_token_digest is None


async def test_a_token_in_its_grace_outlives_the_tokens_that_replace_it_after() -> None:
    # a triple tap: the first answer (it completed the sign-in, and waited on the app's hooks)
    # is the one that comes last; the second tap's token is the one given up
    world = make_world()
    client, session, first, second = await rotated(world)
    _, third = await world.links.activate_session(client, session.id)
    assert await world.links.authenticate(second) is None
    assert await world.links.authenticate(third) is not None
    assert await world.links.authenticate(first) is not None
    world.clock.advance(minutes=5)
    assert await world.links.authenticate(first) is not None


async def test_a_replaced_token_is_kept_only_as_a_keyed_digest() -> None:
    world = make_world()
    _, session, replaced, _token = await rotated(world)
    stored = await world.storage.get(SessionRecord, session.id)
    assert stored is not None and stored.previous_token_digest is not None
    assert replaced not in stored.model_dump_json()
    assert stored.previous_token_digest == world.links.settings.keyring.digest(
        replaced, TokenPurpose.SESSION
    )


async def test_client_state_shows_live_sessions_and_attempts(world: World) -> None:
    client, token = await signed_up(world)
    state = await world.links.client_state(client)
    assert [s.id for s in state.sessions] == [(await world.links.require_session(token)).id]
    assert state.sign_up is not None and state.sign_in is None
    world.clock.advance(days=8)
    assert (await world.links.client_state(client)).sessions == []
