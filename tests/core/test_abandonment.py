"""A newer attempt of the same kind on the same client abandons the older one; its link dies."""

from datetime import timedelta

import anyio
import pytest

from magiclink_core import MagicLinkFailedError, SignInStatus, SignUpStatus

from ._support import make_world, signed_up

pytestmark = pytest.mark.anyio


async def test_a_newer_sign_in_on_the_same_client_abandons_the_older_and_kills_its_link() -> None:
    world = make_world()
    await signed_up(world, "ann@example.org")
    laptop = await world.client()
    first = await world.links.create_sign_in(laptop, "ann@example.org")
    await world.links.prepare_first_factor(laptop, first.id, redirect_url="/")
    old_link = world.last_link("ann@example.org")
    second = await world.links.create_sign_in(laptop, "ann@example.org")
    await world.links.prepare_first_factor(laptop, second.id, redirect_url="/")

    assert (await world.links.get_sign_in(laptop, first.id)).status is SignInStatus.ABANDONED
    with pytest.raises(MagicLinkFailedError):
        await world.links.verify_link(old_link, laptop)
    result = await world.links.verify_link(world.last_link("ann@example.org"), laptop)
    assert result.session_token is not None


async def test_a_sign_in_on_another_client_leaves_the_first_alone() -> None:
    world = make_world()
    await signed_up(world, "ann@example.org")
    laptop, phone = await world.client(), await world.client()
    mine = await world.links.create_sign_in(laptop, "ann@example.org")
    await world.links.prepare_first_factor(laptop, mine.id, redirect_url="/")
    my_link = world.last_link("ann@example.org")
    await world.links.create_sign_in(phone, "ann@example.org")

    assert (
        await world.links.get_sign_in(laptop, mine.id)
    ).status is SignInStatus.NEEDS_FIRST_FACTOR
    assert (await world.links.verify_link(my_link, laptop)).session_token is not None


async def test_a_newer_sign_up_abandons_the_older_and_wakes_its_waiter() -> None:
    world = make_world()
    client = await world.client()
    first = await world.links.create_sign_up(client, "ann@example.org")
    await world.links.prepare_sign_up_verification(client, first.id, redirect_url="/")
    woken: list[SignUpStatus] = []

    async def wait() -> None:
        result = await world.links.wait_for_sign_up(client, first.id)
        woken.append(result.status)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        await world.links.create_sign_up(client, "bob@example.org")
    assert woken == [SignUpStatus.ABANDONED]


async def test_an_attempt_left_alone_past_its_time_reads_as_abandoned() -> None:
    world = make_world()
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, "ann@example.org")
    world.clock.advance(world.links.settings.attempt_ttl)
    assert (await world.links.get_sign_in(client, sign_in.id)).status is SignInStatus.ABANDONED


async def test_an_attempt_abandoned_by_time_is_not_completed_or_renewed_by_its_link() -> None:
    # a link sent shortly before abandon_at outlives it: the attempt reads abandoned, so its
    # link must fail (not complete it) and the resend must not renew it
    world = make_world(attempt_ttl=timedelta(hours=1), link_ttl=timedelta(minutes=10))
    await signed_up(world, "ann@example.org")
    laptop = await world.client()
    sign_in = await world.links.create_sign_in(laptop, "ann@example.org")
    world.clock.advance(minutes=55)
    await world.links.prepare_first_factor(laptop, sign_in.id, redirect_url="/")
    token = world.last_link("ann@example.org")
    world.clock.advance(minutes=6)  # past abandon_at, the link has four minutes left

    assert (await world.links.get_sign_in(laptop, sign_in.id)).status is SignInStatus.ABANDONED
    with pytest.raises(MagicLinkFailedError):
        await world.links.inspect_link(token, laptop)
    with pytest.raises(MagicLinkFailedError):
        await world.links.resend_link(token)
    with pytest.raises(MagicLinkFailedError):
        await world.links.verify_link(token, laptop)
    assert (await world.links.get_sign_in(laptop, sign_in.id)).status is SignInStatus.ABANDONED
    assert sign_in.user_id is not None
    sessions = await world.links.list_sessions(sign_in.user_id)
    assert [s for s in sessions if s.client_id == laptop.id] == []
