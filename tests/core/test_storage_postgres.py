"""PostgresStorage and PostgresNotifier against the shipped contracts, on a real server, each test
in a fresh schema; plus migrations, real columns and indexes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

from magiclink_core.domain.errors import StorageUnavailableError
from magiclink_core.domain.models import RECORD_TYPES, Link, Session
from magiclink_core.ports import Insert
from magiclink_core.storage import PostgresNotifier, PostgresStorage, _sql, migrate_url, postgres
from magiclink_core.storage._sql import migrations
from magiclink_core.testing import make_record
from tests.support import POSTGRES_DSN

from ._flows import purge_lets_writes_in, upgraded_session_goes_on
from ._services import ProxiedNotifierContract, ServerStorageContract, storages

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg() -> AsyncIterator[PostgresStorage]:
    """A migrated storage in a fresh schema."""
    async with storages("postgres") as [store]:
        assert isinstance(store, PostgresStorage)
        yield store


class TestPostgresStorage(ServerStorageContract):
    server = "postgres"


class TestPostgresNotifier(ProxiedNotifierContract):
    server = "postgres"


@pytest.mark.anyio
async def test_migrations_are_idempotent_and_concurrent(schema: str) -> None:
    stores = [PostgresStorage(POSTGRES_DSN, schema=schema) for _ in range(4)]
    try:
        assert await stores[0].schema_version() == 0
        results: list[int] = []

        async def run(store: PostgresStorage) -> None:
            results.append(await store.migrate())

        async with anyio.create_task_group() as group:
            for store in stores:
                group.start_soon(run, store)
        newest = migrations("postgres")[-1][0]
        assert results == [newest] * 4
        assert await stores[0].migrate() == newest
        async with stores[0]._connection() as connection:
            assert await connection.fetchval("SELECT count(*) FROM schema_version") == newest
    finally:
        for store in stores:
            await store.close()


async def _catalog(connection: Any, query: str, table: str) -> dict[str, str]:
    """A catalog query's (name, definition) rows for ``table`` in the current schema."""
    return {name: value for name, value in await connection.fetch(query, table)}


@pytest.mark.anyio
async def test_tables_have_real_columns_and_indexes(pg: PostgresStorage) -> None:
    async with pg._connection() as connection:
        for kind in RECORD_TYPES:
            columns = await _catalog(
                connection,
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = $1",
                kind.table,
            )
            assert set(columns) == set(kind.model_fields), kind.table
            assert columns["created_at"] == "timestamp with time zone"
            indexes = await _catalog(
                connection,
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = $1",
                kind.table,
            )
            for field in kind.unique_fields:
                assert "UNIQUE" in indexes[f"{kind.table}_{field}_key"]
            for field in kind.list_fields:
                assert f"{kind.table}_{field}_idx" in indexes
        assert (
            await connection.fetchval(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'sign_ins' AND column_name = 'verification'"
            )
            == "jsonb"
        )


@pytest.mark.anyio
async def test_a_missing_schema_says_to_migrate(schema: str) -> None:
    from magiclink_core import StorageUnavailableError

    store = PostgresStorage(POSTGRES_DSN, schema=schema)
    try:
        with pytest.raises(StorageUnavailableError) as caught:
            await store.apply([Insert(make_record(Link))])
        assert "migrate" in caught.value.long_message
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_schema_of_version_3_says_to_migrate_and_its_sessions_go_on_after(
    schema: str,
) -> None:
    store = PostgresStorage(POSTGRES_DSN, schema=schema)
    try:
        await store.migrate()
        session = make_record(Session)
        await store.apply([Insert(session)])
        async with store._connection() as connection:  # back to what version 3 made
            await connection.execute(
                "ALTER TABLE sessions DROP COLUMN previous_token_digest, "
                "DROP COLUMN previous_token_until"
            )
            await connection.execute("DELETE FROM schema_version WHERE version > 3")
        for call in (
            store.get(Session, session.id),
            store.apply([Insert(make_record(Session))]),
        ):
            with pytest.raises(StorageUnavailableError) as caught:
                await call
            assert "migrate" in caught.value.long_message
        assert await store.migrate() == migrations("postgres")[-1][0]
        await upgraded_session_goes_on(store, session)
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_caller_made_pool_is_used_and_left_open(schema: str) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(
        POSTGRES_DSN, min_size=1, max_size=2, server_settings={"search_path": schema}
    )
    try:
        store = PostgresStorage(pool=pool)
        await store.migrate()
        link = make_record(Link)
        await store.apply([Insert(link)])
        assert await store.get(Link, link.id) == link
        # the caller's pool is shared with its other users: no connection is kept from it
        assert pool.get_idle_size() == pool.get_size()
        await store.close()
        assert await pool.fetchval("SELECT count(*) FROM links") == 1
    finally:
        await pool.close()


@pytest.mark.anyio
async def test_calls_beyond_the_pool_take_turns_on_its_connections(schema: str) -> None:
    """A connection kept between calls (parked, not given back to asyncpg's pool) must still
    reach the calls waiting in that pool: with one connection and many calls at once, each is
    served in turn, well within the wait for a connection."""
    store = PostgresStorage(POSTGRES_DSN, schema=schema, max_connections=1, connect_timeout=3)
    try:
        await store.migrate()
        links = [make_record(Link) for _ in range(30)]
        async with anyio.create_task_group() as group:
            for link in links:
                group.start_soon(store.apply, [Insert(link)])
        found = [await store.get(Link, link.id) for link in links]
        assert found == links
    finally:
        await store.close()


@pytest.mark.anyio
async def test_closing_gives_back_the_connections_kept_between_calls(schema: str) -> None:
    store = PostgresStorage(POSTGRES_DSN, schema=schema, max_connections=3)
    await store.migrate()
    links = [make_record(Link) for _ in range(9)]
    async with anyio.create_task_group() as group:  # several connections open and kept
        for link in links:
            group.start_soon(store.apply, [Insert(link)])
    pool = store._pool
    assert pool is not None and pool.get_size() > 0
    with anyio.fail_after(10):  # asyncpg's close waits for every connection given out
        await store.close()
    assert pool.get_size() == 0


@pytest.mark.anyio
async def test_a_kept_connection_still_goes_back_to_asyncpg_now_and_then(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that asyncpg's pool still applies its own rules to it (``max_queries`` retires a
    connection only when it is released)."""
    monkeypatch.setattr(postgres, "_HAND_BACK_EVERY", 4)
    store = PostgresStorage(POSTGRES_DSN, schema=schema, max_connections=2)
    try:
        await store.migrate()
        given_back = []
        for _ in range(12):
            await store.get(Link, "lnk_none")
            pool = store._pool
            assert pool is not None
            given_back.append(pool.get_idle_size() == pool.get_size())
        assert given_back.count(True) == 3  # one call in four
    finally:
        await store.close()


def test_a_dsn_or_a_pool_is_required() -> None:
    with pytest.raises(ValueError):
        PostgresStorage()


@pytest.mark.anyio
async def test_a_notifier_borrowing_from_a_caller_made_pool(schema: str) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(POSTGRES_DSN, min_size=1, max_size=3)
    try:
        notifier = PostgresStorage(pool=pool, notify_channel=schema).notifier()
        other = PostgresNotifier(POSTGRES_DSN, channel=schema)
        async with notifier, notifier.subscribe("x") as subscription:
            with anyio.fail_after(5):
                await other.publish("x")
                await subscription.wait()
        await other.close()
        assert await pool.fetchval("SELECT 1") == 1  # its connection went back to the pool
    finally:
        await pool.close()


@pytest.mark.anyio
async def test_purge_lets_live_writes_in_between_its_chunks(schema: str) -> None:
    store = PostgresStorage(POSTGRES_DSN, schema=schema, purge_chunk=100)
    try:
        await store.migrate()
        await purge_lets_writes_in(store)
    finally:
        await store.close()


@pytest.mark.anyio
async def test_migrate_url_migrates_the_schema_it_names(schema: str) -> None:
    newest = migrations("postgres")[-1][0]
    assert await migrate_url(f"{POSTGRES_DSN}?schema={schema}") == newest
    store = PostgresStorage(POSTGRES_DSN, schema=schema)
    try:
        assert await store.schema_version() == newest
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_notifier_without_its_listener_publishes_on_the_storage_pool(
    pg: PostgresStorage,
) -> None:
    """A storage's notifier that has no listening connection (never entered, or between
    reconnections) sends its NOTIFY on a pooled connection of the storage, not on a connection
    opened for each publish: every wake-up of a click would otherwise cost a new server
    backend (a process, on PostgreSQL)."""
    import asyncpg

    heard: list[int] = []  # the backend that sent each NOTIFY
    enough = anyio.Event()

    def on_notify(_connection: object, pid: int, _channel: str, _payload: str) -> None:
        heard.append(pid)
        if len(heard) == 5:
            enough.set()

    notifier = pg.notifier()  # never entered: no listening connection
    listener = await asyncpg.connect(POSTGRES_DSN)
    try:
        await listener.add_listener(notifier.channel, on_notify)
        async with pg._connection() as connection:
            storage_backend = connection.get_server_pid()
        for _ in range(5):
            await notifier.publish("magiclink:sign_in:sia_1")
        with anyio.fail_after(5):
            await enough.wait()
    finally:
        await listener.close()
    assert heard == [storage_backend] * 5


@pytest.mark.anyio
async def test_connections_the_server_dropped_while_kept_cost_no_call(
    pg: PostgresStorage,
) -> None:
    """The storage keeps connections between calls. A server that drops them meanwhile (a
    restart, ``pg_terminate_backend``, an idle-session timeout) fails no later call: asyncpg
    hands a lost connection back to its pool, and a kept one is then no longer usable."""
    # three calls at once, each holding its connection until all three have one. (A burst of
    # calls kept only some of them: a call that ends while another still waits in the pool
    # gives its connection to that one, and how many waited was up to the scheduler.)
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(pg._connection()) for _ in range(3)]
        assert len({id(connection) for connection in held}) == 3
    kept = list(pg._parked)
    assert len(kept) == 3
    pids = [await connection.fetchval("SELECT pg_backend_pid()") for connection in kept]
    all_lost, lost = anyio.Event(), []

    def seen_lost(connection: object) -> None:
        lost.append(connection)
        if len(lost) == len(kept):
            all_lost.set()

    for connection in kept:
        connection.add_termination_listener(seen_lost)
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    finally:
        await admin.close()
    with anyio.fail_after(10):
        await all_lost.wait()
    for _ in range(len(kept) + 1):
        assert await pg.get(Link, "nobody") is None


def test_the_batch_function_is_named_for_the_columns_it_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a magiclink whose records have other columns (an upgrade half rolled out) must call a
    # function of its own, never one whose statements would leave its new column out
    name, statement = _sql.shaped_batch_function()
    assert name.startswith(f"{_sql.APPLY_BATCH_FUNCTION}_")
    for kind in RECORD_TYPES:
        for column in _sql.field_types(kind):
            assert column in statement
    grown = {**_sql.field_types(Session), "new_column": "text"}
    monkeypatch.setitem(_sql._FIELD_TYPES, Session, grown)
    other, other_statement = _sql.shaped_batch_function()
    assert other != name
    assert "new_column" in other_statement


@pytest.mark.anyio
async def test_migrating_keeps_the_batch_function_an_older_magiclink_calls(
    pg: PostgresStorage,
) -> None:
    older = f"{_sql.APPLY_BATCH_FUNCTION}_000000000000"
    async with pg._connection() as connection:
        await connection.execute(
            f"CREATE FUNCTION {older}(changes jsonb) RETURNS void LANGUAGE sql AS 'SELECT NULL'"
        )
    await pg.migrate()
    async with pg._connection() as connection:
        for function in (older, _sql.shaped_batch_function()[0]):
            assert await connection.fetchval("SELECT to_regprocedure($1)", f"{function}(jsonb)")
