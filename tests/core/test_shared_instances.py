"""Two app instances (two MagicLinks, each with its own storage object and notifier) on one
PostgreSQL database, on one Redis, and on one SQLite file: a sign-in started on instance A, its
link clicked on instance B, and A's waiting request woken within 200 ms."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import pytest

from magiclink_core import MagicLinks, SignIn, SignInStatus
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import HasNotifier, Storage
from magiclink_core.storage import MemoryNotifier
from tests.support import WatchedNotifier

from ._flows import last_token, make_links, sign_up
from ._services import SHARED_STORES, storages

# polling every minute: only a notification can wake a 10-second wait before it times out
NO_POLLING = timedelta(minutes=1)


@pytest.fixture(params=SHARED_STORES)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Storage, Storage]]:
    """The store, and two storage objects on it (two app instances) on one fresh schema,
    prefix or file."""
    async with storages(request.param, count=2) as (a, b):
        yield request.param, a, b


@pytest.mark.anyio
async def test_a_click_on_another_instance_wakes_the_waiter(
    pair: tuple[str, Storage, Storage],
) -> None:
    backend, store_a, store_b = pair
    mailer = MemoryMailer()  # one mailbox: the user reads mail from both instances
    assert isinstance(store_a, HasNotifier)  # wake-ups go through the database
    notifier = WatchedNotifier(store_a.notifier())
    a = make_links(store_a, mailer, notifier, wait_poll_interval=NO_POLLING)
    b = make_links(store_b, mailer)
    assert not isinstance(b.notifier, MemoryNotifier)  # left to choose, B takes the database's
    async with a, b:  # both listening, as in an app's lifespan
        await _click_on_b_wakes_a(a, b, notifier, mailer, backend)


async def _click_on_b_wakes_a(
    a: MagicLinks, b: MagicLinks, notifier: WatchedNotifier, mailer: MemoryMailer, backend: str
) -> None:
    email = f"{backend}@example.org"
    await sign_up(a, mailer, email)
    client, _ = await a.create_client()
    attempt = await a.create_sign_in(client, email)
    await a.prepare_first_factor(client, attempt.id, redirect_url="/home")
    token = last_token(mailer, email)

    woken: list[tuple[SignIn, float]] = []

    async def wait_on_a() -> None:
        result = await a.wait_for_sign_in(client, attempt.id, timeout=timedelta(seconds=10))
        woken.append((result, time.perf_counter()))

    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_on_a)
            await notifier.until_waiting()  # A subscribed and settled into its wait
            assert not woken
            clicked = time.perf_counter()
            await b.verify_link(token, None)  # another device, on instance B
            done = time.perf_counter()
    result, at = woken[0]
    latency = at - clicked
    print(
        f"\n{backend}: waiting instance woken {latency * 1000:.1f} ms after the click began "
        f"({(at - done) * 1000:.1f} ms after instance B finished it)"
    )
    # woken complete, not timed out: the notification came through the database
    assert result.status is SignInStatus.COMPLETE
    assert result.created_session_id is not None
    # the session made on B is collected by the waiting client on A
    session, session_token = await a.activate_session(client, result.created_session_id)
    assert session.client_id == client.id and session_token


@pytest.mark.anyio
async def test_instances_see_each_others_records(pair: tuple[str, Storage, Storage]) -> None:
    _, store_a, store_b = pair
    mailer = MemoryMailer()
    a, b = make_links(store_a, mailer), make_links(store_b, mailer)
    client = await sign_up(a, mailer, "shared@example.org")
    # the client cookie made on A works on B, and B sees A's session
    state = await b.client_state(client)
    assert len(state.sessions) == 1
    user_id = state.sessions[0].user_id
    assert await a.get_user(user_id) == await b.get_user(user_id)
