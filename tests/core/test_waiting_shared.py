"""A waiter on PostgreSQL and on Redis, on instance A, woken by a click on instance B, while A's
notifier loses its listening connection (cut at a TCP proxy) and gets it back.

The storage reads of A are counted on the real storage. A waiter reads twice when it starts;
then nothing while the notifier is healthy, once when the connection is lost (it starts
polling), a poll every ``wait_poll_interval`` during the outage, once when the connection is
back, and once when the click wakes it by push. Sockets need real time: bounds here only catch a
hang, and the tests that count exactly use a poll interval too long to come round.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import anyio
import pytest

from magiclink_core import Client, MagicLinks, SignIn, SignInStatus
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Notifier, Storage
from magiclink_core.storage import (
    PostgresNotifier,
    PostgresStorage,
    RedisNotifier,
    RedisStorage,
)
from tests.support import POSTGRES_DSN, REDIS_URL

from ._flows import last_token, make_links, sign_up
from ._services import Proxy, postgres_schema, redis_prefix, target_of, with_port
from ._support import CountingStorage

pytestmark = pytest.mark.anyio
BOUND = 20  # seconds: only to catch a hang
BACKENDS = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


@dataclass
class Pair:
    a: MagicLinks  # waits; reads counted; its notifier listens through the proxy
    b: MagicLinks  # clicks
    reads: CountingStorage
    proxy: Proxy
    mailer: MemoryMailer


@asynccontextmanager
async def backend(
    kind: str, max_connections: int
) -> AsyncIterator[tuple[Storage, Storage, Notifier, Proxy]]:
    """Two storages on one database (A's, B's) and A's notifier, reaching it through a proxy."""
    if kind == "postgres":
        async with postgres_schema() as schema:
            proxy = Proxy(*target_of(POSTGRES_DSN))
            await proxy.start()
            pg = PostgresStorage(POSTGRES_DSN, schema=schema, max_connections=max_connections)
            await pg.migrate()
            store_a: Storage = pg
            store_b: Storage = PostgresStorage(POSTGRES_DSN, schema=schema, notify_channel=schema)
            url = with_port(POSTGRES_DSN, proxy.port)
            yield store_a, store_b, PostgresNotifier(url, channel=schema, connect_timeout=2), proxy
            await proxy.cut()
    else:
        async with redis_prefix() as prefix:
            proxy = Proxy(*target_of(REDIS_URL))
            await proxy.start()
            store_a, store_b = (RedisStorage(REDIS_URL, prefix=prefix) for _ in "ab")
            url = with_port(REDIS_URL, proxy.port)
            notifier = RedisNotifier(url, channel=f"{prefix}notify", connect_timeout=2)
            yield store_a, store_b, notifier, proxy
            await proxy.cut()


@asynccontextmanager
async def two_instances(
    kind: str, poll: timedelta, *, enter_a: bool = True, max_connections: int = 10
) -> AsyncIterator[Pair]:
    async with backend(kind, max_connections) as (store_a, store_b, notifier, proxy):
        mailer = MemoryMailer()
        reads = CountingStorage(store_a)
        a = make_links(reads, mailer, notifier, wait_poll_interval=poll)
        b = make_links(store_b, mailer)
        async with b:
            if enter_a:
                async with a:
                    yield Pair(a, b, reads, proxy, mailer)
            else:
                try:
                    yield Pair(a, b, reads, proxy, mailer)
                finally:
                    await a.aclose()


async def started_sign_in(pair: Pair, email: str) -> tuple[Client, SignIn, str]:
    """A sign-in started on A for an account made on B; returns A's client, it, its token."""
    await sign_up(pair.b, pair.mailer, email)
    client, _ = await pair.a.create_client()
    sign_in = await pair.a.create_sign_in(client, email)
    sign_in = await pair.a.prepare_first_factor(client, sign_in.id, redirect_url="/home")
    await everything_published_heard_on_a(pair)
    return client, sign_in, last_token(pair.mailer, email)


async def everything_published_heard_on_a(pair: Pair) -> None:
    """Return once A's listener has heard every wake-up published so far, the echo of its own
    included (A wakes its waiters at once and again when the echo comes back): a wake-up that
    B publishes after them reaches A after them, one server delivering them in order. Else a
    late echo wakes a waiter that a test counts the reads of. (A not listening hears none.)"""
    if not pair.a.notifier.healthy:
        return
    async with pair.a.notifier.subscribe("test:heard") as heard:
        await pair.b.notifier.publish("test:heard")
        with anyio.fail_after(BOUND):
            await heard.wait()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_lost_listener_costs_one_read_when_lost_and_one_when_back(kind: str) -> None:
    # a poll interval that never comes round in this test: every read is accounted for
    async with two_instances(kind, poll=timedelta(minutes=5)) as pair:
        client, sign_in, token = await started_sign_in(pair, f"{kind}-cut@example.org")
        results: list[SignIn] = []

        async def wait() -> None:
            results.append(await pair.a.wait_for_sign_in(client, sign_in.id))

        async with (
            pair.a.notifier.subscribe("health") as health,  # woken when the health changes
            anyio.create_task_group() as group,
        ):
            start = pair.reads.reads
            group.start_soon(wait)
            await pair.reads.until(start + 1)
            await anyio.wait_all_tasks_blocked()
            assert pair.reads.reads == start + 1  # parked after one read

            await pair.proxy.cut()
            with anyio.fail_after(BOUND):
                await health.wait()
            assert not pair.a.notifier.healthy
            await pair.reads.until(start + 2)  # woken to start polling

            await pair.proxy.restore()
            with anyio.fail_after(BOUND):
                await health.wait()
            assert pair.a.notifier.healthy
            await pair.reads.until(start + 3)  # one read at reconnect: a missed click is caught
            await anyio.wait_all_tasks_blocked()
            assert pair.reads.reads == start + 3

            await pair.b.verify_link(token, None)  # clicked on B: the push reaches A again
        assert results[0].status is SignInStatus.COMPLETE
        assert pair.reads.reads == start + 4


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_waiter_polls_while_its_listener_is_down_and_catches_a_click_made_then(
    kind: str,
) -> None:
    async with two_instances(kind, poll=timedelta(milliseconds=50)) as pair:
        client, sign_in, token = await started_sign_in(pair, f"{kind}-poll@example.org")
        results: list[SignIn] = []

        async def wait() -> None:
            results.append(await pair.a.wait_for_sign_in(client, sign_in.id))

        async with anyio.create_task_group() as group:
            start = pair.reads.reads
            group.start_soon(wait)
            await pair.reads.until(start + 1)
            await pair.proxy.cut()
            await pair.reads.until(start + 1 + 1 + 3)  # woken when lost, then polls
            assert not pair.a.notifier.healthy
            await pair.b.verify_link(token, None)  # its publish cannot reach A: a poll finds it
        assert results[0].status is SignInStatus.COMPLETE
        await pair.proxy.restore()


@pytest.mark.postgres
async def test_parked_waiters_hold_no_database_connection() -> None:
    # A's pool has two connections; twenty parked waiters leave both free
    async with two_instances("postgres", poll=timedelta(minutes=5), max_connections=2) as pair:
        email = "many@example.org"
        await sign_up(pair.b, pair.mailer, email)
        waits = []
        for _ in range(20):
            client, _ = await pair.a.create_client()
            sign_in = await pair.a.create_sign_in(client, email)
            waits.append((client, sign_in))
        async with anyio.create_task_group() as group:
            start = pair.reads.reads
            for client, sign_in in waits:
                group.start_soon(pair.a.wait_for_sign_in, client, sign_in.id)
            await pair.reads.until(start + 20)  # one read each: all parked
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(2):  # the pool waits 3 s for a free connection, then fails
                client, _ = await pair.a.create_client()
                assert (await pair.a.client_state(client)).sessions == []
            group.cancel_scope.cancel()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_app_that_never_enters_links_is_answered_by_polling_and_warned_once(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "magiclink")
    async with two_instances(kind, poll=timedelta(milliseconds=50), enter_a=False) as pair:
        client, sign_in, token = await started_sign_in(pair, f"{kind}-late@example.org")
        results: list[SignIn] = []

        async def wait() -> None:
            results.append(await pair.a.wait_for_sign_in(client, sign_in.id))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert not pair.a.notifier.healthy
            await pair.b.verify_link(token, None)
        assert [r.status for r in results] == [SignInStatus.COMPLETE] * 2
    not_running = [r for r in caplog.records if "is not running" in r.getMessage()]
    assert len(not_running) == 1 and "async with links" in not_running[0].getMessage()
