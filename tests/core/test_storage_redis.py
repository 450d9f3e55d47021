"""RedisStorage and RedisNotifier against the shipped contracts, on a real server, each test under
its own key prefix; plus TTLs and the index cleanup of records Redis expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from magiclink_core.domain.models import EmailAddress, Link, Session
from magiclink_core.ports import Insert, Notifier, Storage, Update
from magiclink_core.storage import RedisNotifier, RedisStorage
from magiclink_core.testing import NotifierContract, StorageContract, make_record
from tests.support import REDIS_URL

from ._services import redis_prefix

pytestmark = pytest.mark.redis


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_prefix() as value:
        yield value


@pytest.fixture
async def rs(prefix: str) -> AsyncIterator[RedisStorage]:
    store = RedisStorage(REDIS_URL, prefix=prefix)
    yield store
    await store.close()


class TestRedisStorage(StorageContract):
    @pytest.fixture
    async def storage(self, rs: RedisStorage) -> AsyncIterator[Storage]:
        yield rs


class TestRedisNotifier(NotifierContract):
    @pytest.fixture
    async def notifiers(self, prefix: str) -> AsyncIterator[tuple[Notifier, Notifier]]:
        here = RedisNotifier(REDIS_URL, channel=f"{prefix}notify")
        other = RedisStorage(REDIS_URL, prefix=prefix)
        yield here, other.notifier()
        await here.close()
        await other.close()


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
async def test_migrate_is_a_no_op(rs: RedisStorage) -> None:
    assert await rs.migrate() == 0


def test_a_url_or_a_client_is_required() -> None:
    with pytest.raises(ValueError):
        RedisStorage()
