"""Faults: a database that is unreachable, stops answering or goes away mid-batch fails fast with
StorageUnavailableError, writes nothing partial, and works again when it is back. Also: drivers
are imported only when used, and a missing one names its extra."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from magiclink_core import MagicLinks, Settings, StorageUnavailableError
from magiclink_core.domain.models import Link, User
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Insert, Migratable, Notifier, Storage, Update
from magiclink_core.storage import (
    MemoryStorage,
    PostgresStorage,
    RedisStorage,
    SQLiteStorage,
    _sql,
    from_url,
)
from magiclink_core.testing import make_record
from tests.support import POSTGRES_DSN, REDIS_URL, SECRET, free_port

from ._services import (
    SERVERS,
    Proxy,
    Server,
    isolated,
    notifier_at,
    server_url,
    storage_at,
    storages,
    target_of,
    with_port,
)

FAST = 2.5  # seconds: "fails fast" with the 1 s timeouts these tests configure


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


# -- optional drivers ----------------------------------------------------------------------------


def test_importing_the_storage_package_imports_no_driver() -> None:
    result = _run(
        "import sys, magiclink_core, magiclink_core.storage\n"
        "from magiclink_core.storage import MemoryStorage, from_url\n"
        "loaded = {'aiosqlite', 'asyncpg', 'redis'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "driver", "extra"),
    [
        ("SQLiteStorage", "aiosqlite", "sqlite"),
        ("PostgresStorage", "asyncpg", "postgres"),
        ("PostgresNotifier", "asyncpg", "postgres"),
        ("RedisStorage", "redis", "redis"),
        ("RedisNotifier", "redis", "redis"),
    ],
)
def test_a_missing_driver_names_its_extra(name: str, driver: str, extra: str) -> None:
    result = _run(
        f"import sys\nsys.modules[{driver!r}] = None\nfrom magiclink_core.storage import {name}\n"
    )
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"magiclink[{extra}]" in result.stderr


# -- from_url ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_from_url_picks_each_backend(tmp_path: Path) -> None:
    assert isinstance(from_url("memory://"), MemoryStorage)
    sqlite_store = from_url(f"sqlite:///{tmp_path}/m.db")
    assert isinstance(sqlite_store, SQLiteStorage) and sqlite_store.path == f"{tmp_path}/m.db"
    assert isinstance(from_url("sqlite:///:memory:"), SQLiteStorage)
    pg = from_url("postgres://u@db:5432/app?schema=auth")
    assert isinstance(pg, PostgresStorage)
    assert pg.dsn == "postgresql://u@db:5432/app" and pg.schema == "auth"
    rs = from_url("redis://cache:6379/2?prefix=app:")
    assert isinstance(rs, RedisStorage) and rs.prefix == "app:"
    await rs.close()
    with pytest.raises(ValueError):
        from_url("mysql://db/app")
    with pytest.raises(ValueError):
        from_url("sqlite://")


@pytest.mark.anyio
async def test_migrate_url_migrates_sqlite(tmp_path: Path) -> None:
    from magiclink_core.storage import migrate_url

    version = await migrate_url(f"sqlite:///{tmp_path}/m.db")
    assert version >= 1
    store = SQLiteStorage(tmp_path / "m.db", auto_migrate=False)
    try:
        assert await store.schema_version() == version
    finally:
        await store.close()
    assert await migrate_url("memory://") == 0


@pytest.mark.anyio
async def test_the_adapters_that_can_migrate_are_migratable(tmp_path: Path) -> None:
    redis_store = RedisStorage(REDIS_URL)
    try:
        for store in (SQLiteStorage(tmp_path / "m.db"), PostgresStorage(POSTGRES_DSN), redis_store):
            assert isinstance(store, Migratable), store
    finally:
        await redis_store.close()
    assert not isinstance(MemoryStorage(), Migratable)


# -- SQLite: a file that cannot be opened, a write lock held by another process ----------------


@pytest.mark.anyio
async def test_sqlite_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "no-such-dir" / "m.db")
    with pytest.raises(StorageUnavailableError):
        await store.get(User, "user_1")
    await store.close()


@pytest.mark.anyio
async def test_sqlite_locked_database_fails_fast_writes_nothing_and_recovers(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path, busy_timeout=timedelta(milliseconds=200))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        user, link = make_record(User), make_record(Link)
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            await store.apply([Insert(user), Insert(link)])
        assert time.monotonic() - started < FAST
        assert await store.get(User, user.id) is None  # reads still work, and saw nothing
        other.execute("ROLLBACK")
        await store.apply([Insert(user), Insert(link)])  # the lock is gone: writes work again
        assert await store.get(Link, link.id) == link
    finally:
        other.close()
        await store.close()


@pytest.mark.anyio
async def test_sqlite_write_waiting_on_another_process_ends_at_the_request_storage_timeout(
    tmp_path: Path,
) -> None:
    """A request's storage_timeout bounds a write that waits for another process's write lock
    (a VACUUM, a stuck writer) as it bounds a server that stops answering: the request fails as
    unavailable at its deadline, not at the storage's longer busy_timeout, and writes nothing."""
    from datetime import timedelta

    path = tmp_path / "m.db"
    store = await SQLiteStorage.open(path, busy_timeout=timedelta(seconds=30))
    links = MagicLinks(
        Settings(
            secret=SECRET,
            base_url="http://localhost:8000",
            storage_timeout=timedelta(milliseconds=300),
        ),
        storage=store,
        mailer=MemoryMailer(),
    )
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            await links.create_client()
        assert time.monotonic() - started < FAST  # a hang's bound: busy_timeout is 30 s
        other.execute("ROLLBACK")
        assert other.execute("SELECT count(*) FROM clients").fetchone() == (0,)
        client, _ = await links.create_client()  # the lock is gone: writes work again
        assert await store.get(type(client), client.id) == client
    finally:
        other.close()
        await links.aclose()


# -- servers: PostgreSQL and Redis, reached through a proxy the test can cut --------------------


@dataclass
class Proxied:
    """A fresh schema or prefix on a server reached through a proxy: ``url`` goes through it."""

    kind: Server
    proxy: Proxy
    url: str
    scope: str

    def storage(self) -> PostgresStorage | RedisStorage:
        """A storage with short timeouts, behind the proxy."""
        return storage_at(self.kind, self.url, self.scope, connect_timeout=1, command_timeout=1)


@pytest.fixture(params=SERVERS)
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[Proxied]:
    kind: Server = request.param
    async with isolated(kind) as scope:
        proxy = Proxy(*target_of(server_url(kind)))
        await proxy.start()
        yield Proxied(kind, proxy, with_port(server_url(kind), proxy.port), scope)
        await proxy.cut()


@pytest.fixture
async def proxied_store(proxied: Proxied) -> AsyncIterator[tuple[Proxy, Storage]]:
    """A migrated storage with short timeouts, behind the proxy."""
    store = proxied.storage()
    try:
        await store.migrate()
        yield proxied.proxy, store
    finally:
        await store.close()


postgres_only = pytest.mark.parametrize(
    "proxied", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


async def _fails_fast(call: Callable[[], Any]) -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        await call()
    elapsed = time.monotonic() - started
    assert elapsed < FAST, f"took {elapsed:.2f} s"


@pytest.mark.anyio
@pytest.mark.parametrize("kind", SERVERS)
async def test_closed_port_fails_fast(kind: Server) -> None:
    url = with_port(server_url(kind), free_port())
    store = storage_at(kind, url, "unused", connect_timeout=1, command_timeout=1)
    try:
        await _fails_fast(lambda: store.get(User, "user_1"))
        await _fails_fast(lambda: store.apply([Insert(make_record(User))]))
        await _fails_fast(lambda: store.purge(make_record(User).created_at))
        if kind == "postgres":  # a Redis migrate has nothing to do: it reaches no server
            await _fails_fast(store.migrate)
    finally:
        await store.close()


@pytest.mark.anyio
async def test_outage_fails_fast_and_recovers(proxied_store: tuple[Proxy, Storage]) -> None:
    proxy, store = proxied_store
    before = make_record(User)
    await store.apply([Insert(before)])
    await proxy.cut()
    user, link = make_record(User), make_record(Link)
    await _fails_fast(lambda: store.apply([Insert(user), Insert(link)]))
    await _fails_fast(lambda: store.get(User, before.id))
    await proxy.start()  # the server is back, on the same address
    assert await store.get(User, before.id) == before
    assert await store.get(User, user.id) is None and await store.get(Link, link.id) is None
    await store.apply([Insert(user), Insert(link)])
    assert await store.get(Link, link.id) == link


@postgres_only
@pytest.mark.anyio
async def test_a_kept_connection_the_server_dropped_fails_as_unavailable(
    proxied_store: tuple[Proxy, PostgresStorage],
) -> None:
    # the storage keeps its connection between calls; the next call is the first to find it
    # gone (asyncpg reports that as a PostgresError, not as an answer of the server)
    proxy, store = proxied_store
    before = make_record(User)
    await store.apply([Insert(before)])
    await proxy.cut()
    await _fails_fast(lambda: store.get(User, before.id))
    await proxy.start()
    assert await store.get(User, before.id) == before


@pytest.mark.anyio
async def test_server_that_stops_answering_fails_fast(
    proxied_store: tuple[Proxy, Storage],
) -> None:
    proxy, store = proxied_store
    before = make_record(User)
    await store.apply([Insert(before)])
    proxy.stall()
    await _fails_fast(lambda: store.get(User, before.id))
    proxy.resume()
    await proxy.cut()  # drop the connections that timed out mid-reply
    await proxy.start()
    assert await store.get(User, before.id) == before


async def _drop_the_batch_functions(store: PostgresStorage, *, general: bool = True) -> None:
    """Make the schema one this magiclink never migrated: without the batch function written
    for its records, and with ``general`` one migrated before version 3 (no
    ``magiclink_apply`` either)."""
    async with store._connection() as connection:
        await connection.execute(
            f"DROP FUNCTION IF EXISTS {_sql.shaped_batch_function()[0]}(jsonb)"
        )
        if general:
            await connection.execute("DROP FUNCTION magiclink_apply(jsonb)")
            await connection.execute("DELETE FROM schema_version WHERE version >= 3")


@postgres_only
@pytest.mark.anyio
async def test_postgres_batches_take_one_round_trip(
    proxied_store: tuple[Proxy, PostgresStorage],
) -> None:
    proxy, store = proxied_store

    async def trips_of_a_batch() -> int:
        users, link = [make_record(User) for _ in range(2)], make_record(Link)
        sent = proxy.sent
        await store.apply([Insert(users[0]), Insert(link), Insert(users[1])])
        trips = proxy.sent - sent
        assert await store.get(Link, link.id) == link
        return trips

    await trips_of_a_batch()  # the first prepares its statement
    assert await trips_of_a_batch() == 1
    # migrated by an older magiclink: its general function, still one trip
    await _drop_the_batch_functions(store, general=False)
    await trips_of_a_batch()  # finds no function, then prepares the general one's statement
    assert await trips_of_a_batch() == 1
    # a schema migrated before version 3: a transaction, BEGIN + 3 statements + COMMIT
    await _drop_the_batch_functions(store)
    await trips_of_a_batch()
    assert await trips_of_a_batch() == 5
    await store.migrate()  # both functions are back, and this magiclink's is used
    await trips_of_a_batch()
    assert await trips_of_a_batch() == 1
    async with store._connection() as connection:
        await connection.execute("DROP FUNCTION magiclink_apply(jsonb)")
    assert await trips_of_a_batch() == 1


@postgres_only
@pytest.mark.anyio
async def test_postgres_batch_ended_by_the_server_mid_way_writes_nothing(
    proxied_store: tuple[Proxy, PostgresStorage],
) -> None:
    _, store = proxied_store
    held = make_record(User)
    await store.apply([Insert(held)])
    fresh, link = make_record(User), make_record(Link)
    batch = [Insert(fresh), Insert(link), Update(held.bumped(held.created_at))]
    holder = await asyncpg.connect(
        POSTGRES_DSN, server_settings={"search_path": store.schema or ""}
    )
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", held.id)
            failed: list[BaseException] = []

            async def write() -> None:
                try:
                    await store.apply(batch)
                except StorageUnavailableError as exc:
                    failed.append(exc)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(write)
                # the batch has inserted two rows and waits for the row lock held here
                # (the server's state: no event of this process can tell, so it is polled)
                with anyio.fail_after(10):
                    while not (blocked := await holder.fetchval(_BLOCKED_ON_ME)):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                await holder.execute("SELECT pg_terminate_backend($1)", blocked)
        assert len(failed) == 1
    finally:
        await holder.close()
    for record in (fresh, link):
        assert await store.get(type(record), record.id) is None
    assert await store.get(User, held.id) == held


# the backend (if any) waiting for a lock the asking connection holds
_BLOCKED_ON_ME = (
    "SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
)


@postgres_only
@pytest.mark.anyio
async def test_postgres_connection_lost_mid_batch_writes_nothing(
    proxied_store: tuple[Proxy, PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a batch is a transaction on a schema migrated before version 3
    proxy, store = proxied_store
    await _drop_the_batch_functions(store)
    real_write = store._write
    written: list[object] = []

    async def write_then_cut(connection: Any, change: Any) -> None:
        await real_write(connection, change)
        written.append(change)
        if len(written) == 2:
            await proxy.cut()  # the server vanishes with two of three changes sent

    monkeypatch.setattr(store, "_write", write_then_cut)
    batch = [make_record(User), make_record(User), make_record(Link)]
    await _fails_fast(lambda: store.apply([Insert(r) for r in batch]))
    monkeypatch.undo()
    await proxy.start()
    for record in batch:
        assert await store.get(type(record), record.id) is None


@pytest.mark.anyio
async def test_the_service_fails_fast_with_a_clear_error_and_recovers(proxied: Proxied) -> None:
    store = proxied.storage()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="http://localhost:8000"),
        storage=store,
        mailer=MemoryMailer(),
    )
    try:
        await store.migrate()
        client, _ = await links.create_client()
        await proxied.proxy.cut()
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as caught:
            await links.create_sign_in(client, "ann@example.org")
        assert time.monotonic() - started < FAST
        assert caught.value.code == "storage_unavailable"
        await proxied.proxy.start()
        sign_in = await links.create_sign_in(client, "ann@example.org")
        assert (await links.get_sign_in(client, sign_in.id)).id == sign_in.id
    finally:
        await links.notifier.close()
        await store.close()


# -- a caller cancelled mid-write (a client that went away) --------------------------------------


@pytest.fixture(params=["sqlite", *SERVERS])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        sqlite = await SQLiteStorage.open(tmp_path / "m.db")
        yield sqlite
        await sqlite.close()
    else:
        async with storages(request.param) as (store,):
            yield store


@pytest.mark.anyio
async def test_cancelled_writes_are_all_or_nothing(any_store: Storage) -> None:
    rounds = 30
    for n in range(rounds):
        batch = [make_record(User) for _ in range(40)]
        with anyio.move_on_after(0.0005 * n):  # cancelled at a different point each round
            await any_store.apply([Insert(r) for r in batch])
        found = [await any_store.get(User, r.id) for r in batch]
        assert found == batch or found == [None] * len(batch), f"round {n}: a partial batch"
    last = make_record(Link)
    await any_store.apply([Insert(last)])  # the storage still works
    assert await any_store.get(Link, last.id) == last


# -- notifiers: a listener whose server stops answering ----------------------------------------


async def _silent_server_is_seen(notifier: Notifier, proxy: Proxy) -> None:
    """A listening connection that stays open but gets no answer is taken for lost (after
    ``keepalive`` seconds of silence and an unanswered check), and found again once the server
    answers. The notifier's subscribers are woken at each change, as waiters are."""
    async with notifier, notifier.subscribe("health") as health:
        assert notifier.healthy
        proxy.stall()
        with anyio.fail_after(10):
            await health.wait()
        assert not notifier.healthy
        proxy.resume()
        with anyio.fail_after(20):
            await health.wait()
        assert notifier.healthy


@pytest.mark.anyio
async def test_a_listener_whose_server_stops_answering_is_seen_down(proxied: Proxied) -> None:
    notifier = notifier_at(
        proxied.kind, proxied.url, proxied.scope, connect_timeout=0.5, keepalive=0.2
    )
    await _silent_server_is_seen(notifier, proxied.proxy)
