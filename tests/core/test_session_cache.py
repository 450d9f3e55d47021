"""The session cache: a signed-in request reads no storage while its session is cached, and a
session that changes anywhere stops being served from any instance's cache at once.

Time is a FakeClock that never moves unless told, so a cached copy never ages out by itself: when
instance B stops serving a revoked session, only the invalidation can have done it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import pytest

from magiclink_core import MagicLinks, SessionStatus, StorageUnavailableError
from magiclink_core.domain.models import Session
from magiclink_core.local_notifier import LocalNotifier
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Change, Update
from magiclink_core.session_cache import SessionCache, session_channel, shard_of
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock, make_record

from ._flows import last_token, make_links
from ._services import SHARED_STORES, storages
from ._support import CountingStorage

pytestmark = pytest.mark.anyio
BOUND = 20  # seconds: only to catch a hang


class CountingWrites(CountingStorage):
    """Reads counted (as in CountingStorage) and every batch that changes a session."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.session_writes = 0

    async def apply(self, changes: Sequence[Change]) -> None:
        await self.inner.apply(changes)
        if any(isinstance(c, Update) and isinstance(c.record, Session) for c in changes):
            self.session_writes += 1


class Switch:
    """An in-process notifier whose health a test turns off and on (as an outage would),
    waking every subscriber at each change as the Notifier port requires."""

    def __init__(self) -> None:
        self.local = LocalNotifier()
        self.healthy = True

    def set(self, healthy: bool) -> None:
        self.healthy = healthy
        self.local.deliver_all()

    async def publish(self, channel: str) -> None:
        self.local.deliver(channel)

    def subscribe(self, channel: str) -> Any:
        return self.local.subscribe(channel)

    async def __aenter__(self) -> Switch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def close(self) -> None:
        await self.local.close()


async def signed_in(links: MagicLinks, mailer: MemoryMailer, email: str) -> str:
    client, _ = await links.create_client()
    attempt = await links.create_sign_up(client, email)
    await links.prepare_sign_up_verification(client, attempt.id, redirect_url="/")
    await links.mail_sent()
    result = await links.verify_link(last_token(mailer, email), client)
    assert result.session_token is not None
    return result.session_token


def instance(storage: Any, mailer: MemoryMailer, clock: FakeClock, **options: Any) -> MagicLinks:
    """An app instance on a frozen clock (its notifier: the storage's own, if it has one)."""
    settings = make_links(storage, mailer).settings
    return MagicLinks(settings, storage=storage, mailer=mailer, clock=clock, **options)


@dataclass
class Counted:
    """An instance over counted storage on a frozen clock."""

    links: MagicLinks
    storage: CountingWrites
    mailer: MemoryMailer
    clock: FakeClock


@pytest.fixture
def counted() -> Counted:
    storage = CountingWrites(MemoryStorage())
    mailer, clock = MemoryMailer(), FakeClock()
    return Counted(instance(storage, mailer, clock), storage, mailer, clock)


@pytest.fixture
async def running(counted: Counted) -> AsyncIterator[tuple[Counted, str]]:
    """The counted instance running (as in an app's lifespan) with Ann signed in: her token."""
    async with counted.links:
        yield counted, await signed_in(counted.links, counted.mailer, "ann@example.org")


async def test_a_cached_session_is_checked_without_a_storage_read(
    running: tuple[Counted, str],
) -> None:
    app, token = running
    first = await app.links.authenticate(token)
    reads = app.storage.reads
    for _ in range(50):
        assert await app.links.authenticate(token) == first
    assert app.storage.reads == reads
    assert await app.links.authenticate("mls1_" + "A" * 43) is None  # unknown: read, not kept


async def test_without_running_links_every_check_reads_storage(counted: Counted) -> None:
    token = await signed_in(counted.links, counted.mailer, "ann@example.org")
    reads = counted.storage.reads
    for _ in range(5):
        assert await counted.links.authenticate(token) is not None
    assert counted.storage.reads == reads + 5


async def test_the_cache_serves_no_longer_than_its_ttl(running: tuple[Counted, str]) -> None:
    app, token = running
    await app.links.authenticate(token)
    reads = app.storage.reads
    app.clock.advance(app.links.settings.session_cache_ttl - timedelta(milliseconds=1))
    await app.links.authenticate(token)
    assert app.storage.reads == reads
    app.clock.advance(timedelta(milliseconds=1))
    await app.links.authenticate(token)
    assert app.storage.reads == reads + 1


async def test_signing_out_stops_the_cached_session_at_once(running: tuple[Counted, str]) -> None:
    app, token = running
    session = await app.links.authenticate(token)
    assert session is not None and await app.links.authenticate(token) == session
    await app.links.end_session(session.id, user_id=session.user_id)
    assert await app.links.authenticate(token) is None


async def test_a_new_primary_address_is_seen_at_once(running: tuple[Counted, str]) -> None:
    app, token = running
    links = app.links
    session = await links.authenticate(token)
    assert session is not None and session.email_address == "ann@example.org"
    added = await links.add_email_address(session, "ann@work.example")
    await links.prepare_email_verification(session, added.id, redirect_url="/")
    await links.mail_sent()
    await links.verify_link(last_token(app.mailer, "ann@work.example"), None)
    await links.set_primary_email_address(session, added.id)
    now = await links.authenticate(token)
    assert now is not None and now.email_address == "ann@work.example"


async def test_the_idle_touch_still_writes_at_most_once_per_interval(
    running: tuple[Counted, str],
) -> None:
    app, token = running
    interval = app.links.settings.session_touch_interval
    for _ in range(3):
        touched_at = app.clock.advance(interval)
        for _ in range(20):  # many requests in the interval: the first one touches
            session = await app.links.authenticate(token)
            assert session is not None and session.last_active_at == touched_at
            app.clock.advance(interval / 100)
        writes = app.storage.session_writes
        app.clock.advance(interval / 2)  # still within the interval of the last touch
        assert await app.links.authenticate(token) is not None
        assert app.storage.session_writes == writes
    assert app.storage.session_writes == 3


async def test_an_outage_turns_the_cache_off_and_a_return_starts_it_empty(
    counted: Counted,
) -> None:
    storage, switch = counted.storage, Switch()
    links = instance(storage, counted.mailer, counted.clock, notifier=switch)
    async with links:
        token = await signed_in(links, counted.mailer, "ann@example.org")
        await links.authenticate(token)
        reads = storage.reads
        await links.authenticate(token)
        assert storage.reads == reads  # cached
        switch.set(False)
        for n in range(1, 4):
            assert await links.authenticate(token) is not None
            assert storage.reads == reads + n  # down: every check reads
        switch.set(True)
        await anyio.wait_all_tasks_blocked()  # the cache's listeners heard the change
        await links.authenticate(token)
        await links.authenticate(token)
        assert storage.reads == reads + 4  # up again: one read, then cached


def test_a_read_that_raced_with_a_change_is_not_kept() -> None:
    cache = SessionCache(Switch(), ttl=timedelta(seconds=5), size=10)  # type: ignore[arg-type]
    cache._running = True  # as while run() listens
    session = make_record(Session)
    now = session.created_at
    epoch = cache.epoch  # a read from storage begins
    cache.forget([session.id])  # meanwhile the session changes
    cache.put("key", session, now, epoch)  # the read, now stale, ends
    assert cache.get("key", now) is None
    cache.put("key", session, now, cache.epoch)
    assert cache.get("key", now) == session


def test_the_cache_keeps_at_most_its_size() -> None:
    cache = SessionCache(Switch(), ttl=timedelta(seconds=5), size=3)  # type: ignore[arg-type]
    cache._running = True
    sessions = [make_record(Session) for _ in range(5)]
    for n, session in enumerate(sessions):
        cache.put(f"key{n}", session, session.created_at, cache.epoch)
    assert len(cache) == 3
    assert cache.get("key0", sessions[0].created_at) is None  # the oldest went first
    assert cache.get("key4", sessions[4].created_at) == sessions[4]


@pytest.fixture(params=SHARED_STORES)
async def two_instances(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[MagicLinks, MagicLinks, MemoryMailer, FakeClock]]:
    """Instances A and B on one PostgreSQL schema, Redis prefix or SQLite file, each with its
    notifier running (as in an app's lifespan), on one frozen clock."""
    async with storages(request.param, count=2) as (store_a, store_b):
        mailer, clock = MemoryMailer(), FakeClock()
        a, b = (instance(store, mailer, clock) for store in (store_a, store_b))
        async with a, b:
            yield a, b, mailer, clock


async def test_revoking_on_one_instance_stops_the_session_on_the_other(
    two_instances: tuple[MagicLinks, MagicLinks, MemoryMailer, FakeClock],
) -> None:
    a, b, mailer, _ = two_instances
    assert a.notifier.healthy and b.notifier.healthy
    token = await signed_in(a, mailer, "ann@example.org")
    session = await b.authenticate(token)
    assert session is not None
    reads_before = await _reads_of(b, token)
    assert reads_before == 0  # B serves it from its cache
    with anyio.fail_after(BOUND):
        async with b.notifier.subscribe(session_channel(shard_of(session.id))) as subscription:
            await a.revoke_sessions(session.user_id)
            await subscription.wait()  # B heard the change ...
            await anyio.wait_all_tasks_blocked()  # ... and its cache acted on it
    assert await b.authenticate(token) is None
    ended = await b.storage.get(Session, session.id)
    assert ended is not None and ended.status is SessionStatus.REVOKED


async def test_signing_in_again_on_a_browser_stops_its_old_session_on_the_other(
    two_instances: tuple[MagicLinks, MagicLinks, MemoryMailer, FakeClock],
) -> None:
    # one browser, one session: the sign-in ends the one it had, which B must stop serving
    a, b, mailer, _ = two_instances
    client, _ = await a.create_client()
    attempt = await a.create_sign_up(client, "ann@example.org")
    await a.prepare_sign_up_verification(client, attempt.id, redirect_url="/")
    await a.mail_sent()
    first = (await a.verify_link(last_token(mailer, "ann@example.org"), client)).session_token
    assert first is not None
    old = await b.authenticate(first)
    assert old is not None and await _reads_of(b, first) == 0  # B serves it from its cache
    sign_in = await a.create_sign_in(client, "ann@example.org")
    await a.prepare_first_factor(client, sign_in.id, redirect_url="/")
    await a.mail_sent()
    with anyio.fail_after(BOUND):
        async with b.notifier.subscribe(session_channel(shard_of(old.id))) as subscription:
            second = await a.verify_link(last_token(mailer, "ann@example.org"), client)
            await subscription.wait()
            await anyio.wait_all_tasks_blocked()
    assert second.session_token is not None and second.session is not None
    assert second.session.id != old.id
    assert await b.authenticate(first) is None
    assert await b.authenticate(second.session_token) is not None


async def _reads_of(links: MagicLinks, token: str) -> int:
    """How many storage reads one more check of ``token`` makes on ``links``."""
    counting = CountingStorage(links.storage)
    real = links._ctx.storage
    object.__setattr__(links._ctx, "storage", counting)
    try:
        await links.authenticate(token)
    finally:
        object.__setattr__(links._ctx, "storage", real)
    return counting.reads


async def test_a_replaced_token_made_current_again_stops_the_cached_other_at_its_grace() -> None:
    # a cached copy that outlives the grace (no touch due either): only the drop on
    # readoption stops the other token
    storage, mailer, clock = CountingWrites(MemoryStorage()), MemoryMailer(), FakeClock()
    settings = make_links(
        storage,
        mailer,
        session_cache_ttl=timedelta(minutes=10),
        session_touch_interval=timedelta(minutes=5),
    ).settings
    links = MagicLinks(settings, storage=storage, mailer=mailer, clock=clock)
    async with links:
        client, _ = await links.create_client()
        attempt = await links.create_sign_up(client, "ann@example.org")
        await links.prepare_sign_up_verification(client, attempt.id, redirect_url="/")
        await links.mail_sent()
        result = await links.verify_link(last_token(mailer, "ann@example.org"), client)
        replaced = result.session_token
        assert result.session is not None and replaced is not None
        _, replacing = await links.activate_session(client, result.session.id)
        assert await links.authenticate(replacing) is not None  # cached now
        clock.advance(seconds=30)
        assert await links.authenticate(replaced) is not None  # the browser kept this one
        clock.advance(settings.session_token_grace)
        assert await links.authenticate(replacing) is None
        assert await links.authenticate(replaced) is not None  # read, and kept
        reads = storage.reads
        for _ in range(3):  # the session's own token again: served from the cache
            assert await links.authenticate(replaced) is not None
        assert storage.reads == reads


class LandsThenFails(MemoryStorage):
    """A store that, when told, writes its next batch and then answers with an outage: the
    write landed, its answer was lost."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_next_answer = False

    async def apply(self, changes: Sequence[Change]) -> None:
        await super().apply(changes)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise StorageUnavailableError(long_message="the answer was lost")


async def test_a_session_a_click_ended_leaves_the_cache_even_when_the_answer_is_lost() -> None:
    """Signing in again on a browser ends the session it had, in the click's batch. When that
    batch lands but its answer is lost, the click fails, yet the ended session must stop being
    served from the cache at once: an outcome nobody can know is treated as written, as for
    every other write of a session (``Context.try_write``)."""
    storage, mailer, clock = LandsThenFails(), MemoryMailer(), FakeClock()
    links = instance(storage, mailer, clock)
    async with links:
        email = "ann@example.org"
        client, client_token = await links.create_client()
        sign_up = await links.create_sign_up(client, email)
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        await links.mail_sent()
        old = (await links.verify_link(last_token(mailer, email), client)).session_token
        assert old is not None and await links.authenticate(old) is not None  # now cached
        browser = await links.get_client(client_token)
        assert browser is not None
        sign_in = await links.create_sign_in(browser, email)
        await links.prepare_first_factor(browser, sign_in.id, redirect_url="/")
        await links.mail_sent()
        storage.lose_next_answer = True
        with pytest.raises(StorageUnavailableError):
            await links.verify_link(last_token(mailer, email), browser)
        stored = await storage.list(Session, "client_id", client.id)
        assert [s.status for s in stored].count(SessionStatus.ENDED) == 1  # the batch landed
        assert await links.authenticate(old) is None
