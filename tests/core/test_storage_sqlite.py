"""SQLiteStorage against the shipped contract, plus what only a file database can show:
restarts, migrations, real columns and indexes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from magiclink_core.domain.errors import StorageUnavailableError
from magiclink_core.domain.models import RECORD_TYPES, EmailAddress, Link, Session, User
from magiclink_core.ports import Insert, Storage, Update
from magiclink_core.storage import SQLiteStorage
from magiclink_core.storage import sqlite as sqlite_storage
from magiclink_core.storage._sql import migrations
from magiclink_core.testing import StorageContract, make_record
from magiclink_core.testing.contract import T0

from ._flows import purge_lets_writes_in, upgraded_session_goes_on
from ._support import CounterReads


class TestSQLiteStorage(StorageContract, CounterReads):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[Storage]:
        store = SQLiteStorage(tmp_path / "magiclink.db")
        yield store
        await store.close()


class TestSQLiteStorageStatementByStatement(StorageContract):
    """The contract again where aiosqlite runs nothing of this library's on its thread (its
    private ``_execute`` gone): a batch then goes BEGIN, statement by statement, COMMIT."""

    @pytest.fixture
    async def storage(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[Storage]:
        monkeypatch.setattr(sqlite_storage, "_RUNS_OURS", False)
        store = SQLiteStorage(tmp_path / "magiclink.db")
        yield store
        await store.close()


class TestSQLiteStorageInMemory(StorageContract, CounterReads):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[Storage]:
        store = await SQLiteStorage.open(":memory:")
        yield store
        await store.close()


@pytest.mark.anyio
async def test_records_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    first = SQLiteStorage(path)
    link = make_record(Link)
    await first.apply([Insert(link)])
    await first.close()
    second = await SQLiteStorage.open(path)
    try:
        assert await second.get(Link, link.id) == link
        assert await second.schema_version() == migrations("sqlite")[-1][0]
    finally:
        await second.close()


@pytest.mark.anyio
async def test_migrate_is_idempotent_and_versioned(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "m.db", auto_migrate=False)
    try:
        assert await store.schema_version() == 0
        newest = await store.migrate()
        assert await store.migrate() == newest
        assert await store.schema_version() == newest
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "m.db") as db:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone() == (
            len(migrations("sqlite")),
        )
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.anyio
async def test_a_version_2_database_is_upgraded_on_opening_and_its_sessions_go_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStorage(path)
    session = make_record(Session)
    await store.apply([Insert(session)])
    await store.close()
    with sqlite3.connect(path) as db:  # back to what version 2 made
        db.execute("DROP INDEX sessions_previous_token_digest_key")
        db.execute("ALTER TABLE sessions DROP COLUMN previous_token_digest")
        db.execute("ALTER TABLE sessions DROP COLUMN previous_token_until")
        db.execute("DELETE FROM schema_version WHERE version > 2")
    stale = SQLiteStorage(path, auto_migrate=False)
    try:
        with pytest.raises(StorageUnavailableError) as caught:
            await stale.get(Session, session.id)
        assert "migrate" in caught.value.long_message
    finally:
        await stale.close()
    upgraded = await SQLiteStorage.open(path)
    try:
        assert await upgraded.schema_version() == migrations("sqlite")[-1][0]
        await upgraded_session_goes_on(upgraded, session)
    finally:
        await upgraded.close()


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


@pytest.mark.anyio
async def test_every_model_field_has_a_column_and_lookups_are_indexed(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(tmp_path / "m.db")
    await store.close()
    with sqlite3.connect(tmp_path / "m.db") as db:
        for kind in RECORD_TYPES:
            assert _columns(db, kind.table) == set(kind.model_fields), kind.table
            indexes = {
                row[0]: row[1]
                for row in db.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                    (kind.table,),
                )
            }
            for field in kind.unique_fields:
                assert "UNIQUE" in indexes[f"{kind.table}_{field}_key"]
            for field in kind.list_fields:
                assert f"{kind.table}_{field}_idx" in indexes
            assert f"{kind.table}_purge_after_idx" in indexes


@pytest.mark.anyio
async def test_two_storages_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    a = SQLiteStorage(tmp_path / "m.db")
    b = SQLiteStorage(tmp_path / "m.db")
    try:
        address = make_record(EmailAddress, claimed_email="ann@example.org")
        await a.apply([Insert(address)])
        assert await b.find(EmailAddress, "claimed_email", "ann@example.org") == address
        user = make_record(User)
        await b.apply([Insert(user)])
        await a.apply([Update(user.bumped(T0))])
        assert (await b.get(User, user.id)).version == 2  # type: ignore[union-attr]
    finally:
        await a.close()
        await b.close()


@pytest.mark.anyio
async def test_purge_works_in_small_chunks(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "m.db", purge_chunk=2)
    try:
        links = [make_record(Link, purge_after=T0 - timedelta(hours=1)) for _ in range(5)]
        await store.apply([Insert(link) for link in links])
        assert await store.purge(T0, limit=4) == 4
        assert await store.purge(T0) == 1
    finally:
        await store.close()


def test_unknown_fields_are_refused_before_reaching_sql(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStorage(tmp_path / "m.db")
        try:
            with pytest.raises(ValueError):
                await store.find(User, "id; DROP TABLE users", "x")
            with pytest.raises(ValueError):
                await store.list(User, "email", "x")
        finally:
            await store.close()

    anyio.run(main)


@pytest.mark.anyio
async def test_a_pending_sign_in_and_its_session_survive_a_restart(tmp_path: Path) -> None:
    from magiclink_core import SignInStatus
    from magiclink_core.mailers import MemoryMailer

    from ._flows import last_token, make_links, sign_up

    mailer = MemoryMailer()
    first = SQLiteStorage(tmp_path / "m.db")
    app = make_links(first, mailer)
    owner = await sign_up(app, mailer, "ann@example.org")
    client, _ = await app.create_client()
    attempt = await app.create_sign_in(client, "ann@example.org")
    await app.prepare_first_factor(client, attempt.id, redirect_url="/home")
    await first.close()  # the app restarts with the sign-in pending

    second = await SQLiteStorage.open(tmp_path / "m.db")
    try:
        app = make_links(second, mailer)
        assert len((await app.client_state(owner)).sessions) == 1
        result = await app.verify_link(last_token(mailer, "ann@example.org"), client)
        assert result.attempt.status is SignInStatus.COMPLETE and result.session_token
    finally:
        await second.close()


@pytest.mark.anyio
async def test_purge_lets_live_writes_in_between_its_chunks(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(tmp_path / "m.db", purge_chunk=100)
    try:
        await purge_lets_writes_in(store)
    finally:
        await store.close()


# -- reads on the event loop's own connection ----------------------------------------------------


@pytest.mark.anyio
async def test_in_memory_databases_are_private_and_end_with_close() -> None:
    first, second = await SQLiteStorage.open(":memory:"), await SQLiteStorage.open(":memory:")
    try:
        user = make_record(User)
        await first.apply([Insert(user)])
        assert await first.get(User, user.id) == user
        assert await second.get(User, user.id) is None
        await first.close()
        assert await first.get(User, user.id) is None  # reconnected: a new, empty database
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_first_calls_racing_on_a_new_file_all_find_the_schema(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "m.db")
    found: list[object] = []
    try:
        async with anyio.create_task_group() as group:
            for _ in range(10):

                async def read() -> None:
                    found.append(await store.get(User, "user_1"))

                group.start_soon(read)
        assert found == [None] * 10
    finally:
        await store.close()


@pytest.mark.anyio
async def test_reads_are_neither_blocked_nor_refused_by_another_writer(tmp_path: Path) -> None:
    """The loop's reader never waits for a lock (a wait would stall every request): in WAL mode
    another connection's open write transaction and its commits do not get in its way."""
    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        held = make_record(User)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock, mid-write
        other.execute(
            "INSERT INTO users (id, version, created_at, updated_at) VALUES (?, 1, ?, ?)",
            (held.id, "2030-01-01T00:00:00.000000Z", "2030-01-01T00:00:00.000000Z"),
        )
        assert await store.get(User, held.id) is None  # answered at once; uncommitted is unseen
        other.execute("COMMIT")
        assert await store.get(User, held.id) is not None

        ids = [make_record(User).id for _ in range(300)]

        def keep_writing() -> None:
            for user_id in ids:  # a commit each, checkpoints included
                other.execute(
                    "INSERT INTO users (id, version, created_at, updated_at) VALUES (?, 1, ?, ?)",
                    (user_id, "2030-01-01T00:00:00.000000Z", "2030-01-01T00:00:00.000000Z"),
                )

        reads = 0
        async with anyio.create_task_group() as group:
            writing = anyio.Event()

            async def write_in_a_thread() -> None:
                await anyio.to_thread.run_sync(keep_writing)
                writing.set()

            group.start_soon(write_in_a_thread)
            while not writing.is_set():
                await store.get(User, ids[0])  # raises StorageUnavailableError if refused
                await store.list(EmailAddress, "user_id", held.id)
                reads += 1
                await anyio.lowlevel.checkpoint()
        assert reads > 0
        assert all([await store.get(User, user_id) is not None for user_id in ids])
    finally:
        other.close()
        await store.close()


@pytest.mark.anyio
async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not a database, " * 200)
    store = SQLiteStorage(path)
    with pytest.raises(StorageUnavailableError):
        await store.get(User, "user_1")
    with pytest.raises(StorageUnavailableError):
        await store.apply([Insert(make_record(User))])
    await store.close()


@pytest.mark.anyio
async def test_a_batch_is_one_trip_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each trip hands the thread a job and wakes the loop when it is done: a click's batch of
    # three took five (BEGIN, the statements, COMMIT)
    store = await SQLiteStorage.open(tmp_path / "m.db")
    trips = 0
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    try:
        user, link = make_record(User), make_record(Link)
        await store.apply([Insert(user), Insert(link), Update(user.bumped(T0))])
        assert trips == 1
        assert await store.get(User, user.id) == user.bumped(T0)
        assert await store.get(Link, link.id) == link
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_batch_handed_to_the_writer_is_seen_through_when_its_caller_is_cancelled(
    tmp_path: Path,
) -> None:
    """Once a batch is on the writer's thread its outcome is settled before ``apply`` returns,
    as a write sent to a server is: here it waits for another process's write lock, its caller
    is cancelled meanwhile, and it still commits whole, leaving no transaction open."""
    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        user, link = make_record(User), make_record(Link)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(store.apply, [Insert(user), Insert(link)])
                await anyio.wait_all_tasks_blocked()  # the batch waits on the writer's thread
                scope.cancel()
                other.execute("COMMIT")
        assert scope.cancelled_caught
        assert await store.get(User, user.id) == user
        assert await store.get(Link, link.id) == link
        later = make_record(User)
        await store.apply([Insert(later), Update(user.bumped(T0))])  # nothing left open
        assert await store.get(User, later.id) == later
    finally:
        other.close()
        await store.close()


@pytest.mark.anyio
async def test_a_write_waiting_for_another_process_stops_when_its_caller_is_cancelled(
    tmp_path: Path,
) -> None:
    """A write that has not begun (another process holds the write lock) is given up when its
    caller is cancelled, writing nothing, instead of holding the caller for ``busy_timeout``."""
    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path, busy_timeout=timedelta(seconds=30))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        user, link = make_record(User), make_record(Link)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with anyio.fail_after(15):  # a hang's bound: busy_timeout is 30 s
            for changes in ([Insert(user), Insert(link)], [Insert(user)]):  # a batch, a lone one
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as group:
                        group.start_soon(store.apply, changes)
                        await anyio.wait_all_tasks_blocked()  # it waits on the writer's thread
                        scope.cancel()
                assert scope.cancelled_caught
        other.execute("COMMIT")
        assert await store.get(User, user.id) is None
        assert await store.get(Link, link.id) is None
        await store.apply([Insert(user), Insert(link)])  # nothing left open
        assert await store.get(Link, link.id) == link
    finally:
        other.close()
        await store.close()


@pytest.mark.anyio
async def test_a_write_waits_out_another_process_lock_held_across_several_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite is asked to wait for the lock a short while at a time (so that a cancelled caller
    can stop in between); a lock held longer than one such wait, but within ``busy_timeout``,
    still lets the write through once it is released."""
    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path, busy_timeout=timedelta(seconds=30))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    tries = 0
    tried_again = anyio.Event()
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal tries
        tries += 1
        if tries == 3:
            tried_again.set()
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    try:
        user, link = make_record(User), make_record(Link)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with anyio.fail_after(15):  # a hang's bound: busy_timeout is 30 s
            async with anyio.create_task_group() as group:
                group.start_soon(store.apply, [Insert(user), Insert(link)])
                await tried_again.wait()  # two waits ran out while the lock was held
                other.execute("COMMIT")
        assert await store.get(User, user.id) == user
        assert await store.get(Link, link.id) == link
    finally:
        other.close()
        await store.close()
