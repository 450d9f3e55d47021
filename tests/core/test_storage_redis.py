"""RedisStorage and RedisNotifier against the shipped contracts, on a real server, each test under
its own key prefix; plus TTLs and the index cleanup of records Redis expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from magiclink_core import StorageUnavailableError
from magiclink_core.domain.models import EmailAddress, Link, Session, User
from magiclink_core.ports import Insert, Update
from magiclink_core.storage import RedisStorage, from_url, migrate_url
from magiclink_core.testing import make_record
from tests.support import REDIS_URL

from ._services import ProxiedNotifierContract, ServerStorageContract

pytestmark = pytest.mark.redis


@pytest.fixture
async def rs(prefix: str) -> AsyncIterator[RedisStorage]:
    store = RedisStorage(REDIS_URL, prefix=prefix)
    yield store
    await store.close()


class TestRedisStorage(ServerStorageContract):
    server = "redis"


class TestRedisNotifier(ProxiedNotifierContract):
    server = "redis"


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.anyio
async def test_records_expire_by_themselves_at_purge_after(rs: RedisStorage) -> None:
    now = _now()
    link = make_record(Link, created_at=now, updated_at=now, purge_after=now + timedelta(days=1))
    await rs.apply([Insert(link)])
    ttl = await rs._client.pttl(rs._key(Link, link.id))
    assert timedelta(hours=23) < timedelta(milliseconds=ttl) <= timedelta(days=1)
    session = make_record(
        Session, created_at=now, updated_at=now, purge_after=now + timedelta(days=2)
    )
    await rs.apply([Insert(session)])
    unique_ttl = await rs._client.pttl(f"{rs.prefix}sessions:u:token_digest:{session.token_digest}")
    assert timedelta(days=1) < timedelta(milliseconds=unique_ttl) <= timedelta(days=2)
    # a record without purge_after lives until deleted
    address = make_record(EmailAddress)
    await rs.apply([Insert(address)])
    assert await rs._client.pttl(rs._key(EmailAddress, address.id)) == -1


@pytest.mark.anyio
async def test_an_update_moves_the_expiry(rs: RedisStorage) -> None:
    now = _now()
    session = make_record(
        Session, created_at=now, updated_at=now, purge_after=now + timedelta(hours=1)
    )
    await rs.apply([Insert(session)])
    await rs.apply([Update(session.bumped(now, purge_after=now + timedelta(days=3)))])
    ttl = await rs._client.pttl(rs._key(Session, session.id))
    assert ttl > timedelta(days=2).total_seconds() * 1000


@pytest.mark.anyio
async def test_purge_cleans_the_index_entries_of_records_redis_expired(rs: RedisStorage) -> None:
    now = _now()
    session = make_record(
        Session,
        user_id="user_gone",
        created_at=now,
        updated_at=now,
        purge_after=now + timedelta(hours=1),
    )
    await rs.apply([Insert(session)])
    key = rs._key(Session, session.id)
    assert 0 < await rs._client.pttl(key) <= timedelta(hours=1).total_seconds() * 1000
    # Redis's clock cannot be moved: move the expiry into the past instead, and Redis drops the
    # record now, as it would have in an hour (its index entries stay behind)
    await rs._client.pexpireat(key, 1)
    assert not await rs._client.exists(key)
    assert await rs.list(Session, "user_id", "user_gone") == []
    assert await rs.find(Session, "token_digest", session.token_digest) is None
    assert await rs.purge(now + timedelta(hours=2)) == 1
    leftovers = [key async for key in rs._client.scan_iter(match=f"{rs.prefix}*")]
    assert leftovers == []


@pytest.mark.anyio
async def test_a_server_that_lost_its_scripts_has_each_loaded_again(rs: RedisStorage) -> None:
    # a restarted Redis, or SCRIPT FLUSH, forgets the Lua scripts the storage runs by EVALSHA:
    # every kind of call still works, the script loaded again on the way
    now = _now()
    later = now + timedelta(minutes=1)
    session = make_record(
        Session, user_id="user_1", created_at=now, updated_at=now, purge_after=later
    )
    await rs._client.script_flush()
    await rs.apply([Insert(session)])
    await rs._client.script_flush()
    assert await rs.find(Session, "token_digest", session.token_digest) == session
    await rs._client.script_flush()
    assert await rs.list(Session, "user_id", "user_1") == [session]
    await rs._client.script_flush()
    assert (await rs.increment("k", window=timedelta(minutes=1), now=now))[0] == 1
    await rs._client.script_flush()
    assert await rs.purge(later) == 1
    assert await rs.get(Session, session.id) is None


@pytest.mark.anyio
async def test_migrate_is_a_no_op(rs: RedisStorage, prefix: str) -> None:
    assert await rs.migrate() == 0
    assert await migrate_url(f"{REDIS_URL}?prefix={prefix}") == 0


def test_a_url_or_a_client_is_required() -> None:
    with pytest.raises(ValueError):
        RedisStorage()


# -- the connection pool: a burst queues, a pool busy for too long fails fast --------------------


@pytest.mark.anyio
async def test_a_burst_of_calls_queues_for_a_small_pool_and_all_succeed(prefix: str) -> None:
    store = RedisStorage(REDIS_URL, prefix=prefix, max_connections=10)
    try:
        session = make_record(Session, user_id="user_burst")
        await store.apply([Insert(session)])
        answers: list[object] = []

        async def call(n: int) -> None:
            if n % 4 == 0:
                answers.append(await store.get(Session, session.id))
            elif n % 4 == 1:
                answers.append(await store.find(Session, "token_digest", session.token_digest))
            elif n % 4 == 2:
                answers.append((await store.list(Session, "user_id", "user_burst"))[0])
            else:
                count, _ = await store.increment("burst", window=timedelta(hours=1), now=_now())
                answers.append(count)

        with anyio.fail_after(60):  # a generous bound, to catch a hang
            async with anyio.create_task_group() as group:
                for n in range(1000):
                    group.start_soon(call, n)
        assert [a for a in answers if not isinstance(a, int)] == [session] * 750
        assert sorted(a for a in answers if isinstance(a, int)) == list(range(1, 251))
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_pool_busy_past_the_wait_is_unavailable_then_recovers(prefix: str) -> None:
    store = RedisStorage(
        REDIS_URL, prefix=prefix, max_connections=2, pool_timeout=0.2, command_timeout=30
    )
    try:
        user = make_record(User)
        await store.apply([Insert(user)])
        async with anyio.create_task_group() as group:
            for _ in range(2):  # hold every connection of the pool with a blocking pop
                group.start_soon(store._client.blpop, [f"{prefix}never"], 20)  # type: ignore[attr-defined]
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(5):
                with pytest.raises(StorageUnavailableError):
                    await store.get(User, user.id)
                with pytest.raises(StorageUnavailableError):
                    await store.apply([Insert(make_record(User))])
            group.cancel_scope.cancel()
        assert await store.get(User, user.id) == user  # connections free again: it works
    finally:
        await store.close()


def test_the_pool_is_set_through_from_url_options() -> None:
    store = from_url(f"{REDIS_URL}?prefix=app:", max_connections=7, pool_timeout=1.5)
    assert isinstance(store, RedisStorage)
    assert (store.prefix, store.max_connections, store.pool_timeout) == ("app:", 7, 1.5)
    pool = store._client.connection_pool  # type: ignore[attr-defined]
    assert (pool.max_connections, pool.timeout) == (7, 1.5)
    with pytest.raises(ValueError):
        RedisStorage(REDIS_URL, max_connections=0)
