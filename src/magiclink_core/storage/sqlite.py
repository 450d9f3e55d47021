"""SQLite storage (``magiclink[sqlite]``): the embedded default for one machine and the demo.

The processes sharing the file (an app's workers) wake each other through
:class:`~magiclink_core.storage.sqlite_notifier.SQLiteNotifier`, :meth:`SQLiteStorage.notifier`.

Records live in real tables (see ``_sql.py``), in WAL mode so reads never wait for the writer.
Every :meth:`SQLiteStorage.apply` is one ``BEGIN IMMEDIATE`` transaction of conditional
statements (``UPDATE ... WHERE id = ? AND version = ?``, inserts guarded by the primary key and
unique indexes): all of it commits or none of it does, and it survives a crash or a restart.

Two connections. Writes go through an aiosqlite connection, on its worker thread (a commit waits
for the disk), a whole transaction per trip there. A write that finds another process holding
the write lock is tried again until ``busy_timeout`` has passed, SQLite waiting
``_LOCK_WAIT_SLICE`` at most per try: between tries a caller that was cancelled (a request whose
``storage_timeout`` ran out) stops, having written nothing. Reads are indexed lookups that take
microseconds, so they run on the event loop, on a plain ``sqlite3`` connection of their own: each
read executes, fetches every row and ends its statement without awaiting in between, so its
snapshot ends with it and the next read sees every commit made before it started. That reader never
waits for a lock (its busy timeout is 0): in WAL mode a reader is not blocked by the writer, and if
SQLite ever answers "busy" (another process recovering the WAL after a crash) the read fails at
once with :class:`~magiclink_core.domain.errors.StorageUnavailableError` rather than stall the
loop.

``":memory:"`` is a named in-memory database in shared-cache mode, private to the storage and
gone when it closes; shared-cache connections lock whole tables, so there reads take the write
lock (they still run on the loop).

Connecting is lazy: the first call opens the database (and, with ``auto_migrate``, the default,
creates or upgrades the schema). :meth:`SQLiteStorage.open` does that eagerly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..domain.errors import StorageUnavailableError
from ..domain.models import Record
from ..local_notifier import LocalNotifier
from ..ports import Change, Insert, Notifier, R, Update, WriteConflict
from . import _records, _sql
from ._extras import missing_extra
from .sqlite_notifier import SQLiteNotifier, UnsharedNotifier, supported

try:
    import aiosqlite
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("SQLiteStorage", "aiosqlite", "sqlite") from exc

logger = logging.getLogger("magiclink.storage")

T = TypeVar("T")

_LOCK_WAIT_SLICE = timedelta(milliseconds=100)
"""The longest SQLite waits for another process's write lock in one trip to the writer's thread
(its ``busy_timeout`` pragma). A trip runs to its end even when its caller is cancelled, so this
is how late a cancelled write can stop; ``SQLiteStorage.busy_timeout`` is the wait over all
tries."""

_MEMORY = ":memory:"
_Rows = list[sqlite3.Row]
# Table and column names in SQL text come from the record classes and _records.check_field,
# never from callers: hence the S608 exemptions below.


class SQLiteStorage:
    """Storage in one SQLite file.

    :param path: the database file (created if missing), or ``":memory:"`` for a throwaway one.
    :param auto_migrate: create or upgrade the schema when first connecting (default True: an
        embedded database has nobody else to run ``magiclink migrate``).
    :param busy_timeout: how long a write waits for another process's write before failing with
        :class:`~magiclink_core.domain.errors.StorageUnavailableError`. A caller cancelled
        meanwhile (a request past its ``storage_timeout``) stops waiting sooner, writing
        nothing.
    :param purge_chunk: rows deleted per short write transaction while purging.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auto_migrate: bool = True,
        busy_timeout: timedelta = timedelta(seconds=5),
        purge_chunk: int = 200,
    ) -> None:
        self.path = os.fspath(path)
        self.auto_migrate = auto_migrate
        self.busy_timeout = busy_timeout
        self.purge_chunk = max(1, purge_chunk)
        self._writer: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # every holder awaits the writer's thread, so others get their turn without the
        # extra trip through the event loop a plain Lock takes on every acquire
        self._write_lock = anyio.Lock(fast_acquire=True)
        self._connect_lock = anyio.Lock()
        self._notifier: Notifier | None = None

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **options: Any) -> SQLiteStorage:
        """Create the storage and connect (and migrate, unless ``auto_migrate=False``) now."""
        storage = cls(path, **options)
        await storage.connect()
        return storage

    # -- connections ---------------------------------------------------------------------------

    @property
    def _wait_per_try(self) -> timedelta:
        """How long SQLite waits for another process's lock in one try (the writer's pragma)."""
        return min(self.busy_timeout, _LOCK_WAIT_SLICE)

    @property
    def _in_memory(self) -> bool:
        return self.path == _MEMORY

    async def connect(self) -> None:
        """Open the database now (idempotent); every other method does it when first needed."""
        async with self._connect_lock:
            if self._writer is not None:
                return
            # a fresh name per connect: each :memory: storage (and each reconnect) starts empty
            database = (
                f"file:magiclink-{uuid.uuid4().hex}?mode=memory&cache=shared"
                if self._in_memory
                else self.path
            )
            writer = await self._open_writer(database)
            reader: sqlite3.Connection | None = None
            try:
                reader = await anyio.to_thread.run_sync(_open_reader, database, self._in_memory)
                if self.auto_migrate:
                    # before the connections are published: no read may see a missing table
                    await self._migrate(writer)
            except BaseException as exc:
                if reader is not None:
                    reader.close()
                with anyio.CancelScope(shield=True):
                    await writer.close()
                if isinstance(exc, sqlite3.Error):
                    raise _unavailable(exc) from exc
                raise
            self._writer, self._reader = writer, reader

    async def _open_writer(self, database: str) -> aiosqlite.Connection:
        try:
            # open once in a worker thread first: a file that cannot be opened fails here,
            # cleanly (aiosqlite leaves a stray thread callback behind when its connect fails)
            if not self._in_memory:
                await anyio.to_thread.run_sync(_probe, database)
            connection = await aiosqlite.connect(
                database, isolation_level=None, uri=self._in_memory
            )
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        try:
            # switching a new file to WAL may wait for another process's lock: the whole
            # busy_timeout; every later write waits a slice per try (_waiting_out_locks)
            await connection.execute(f"PRAGMA busy_timeout = {_ms(self.busy_timeout)}")
            await connection.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed transaction survives power loss too, not only a crash
            await connection.execute("PRAGMA synchronous = FULL")
            await connection.execute(f"PRAGMA busy_timeout = {_ms(self._wait_per_try)}")
        except sqlite3.Error as exc:
            await connection.close()
            raise _unavailable(exc) from exc
        return connection

    async def _connected_writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            await self.connect()
        writer = self._writer
        if writer is None:
            raise _closed()
        return writer

    async def _connected_reader(self) -> sqlite3.Connection:
        reader = self._reader
        if reader is None:
            await self.connect()
            reader = self._reader
            if reader is None:
                raise _closed()
        return reader

    async def close(self) -> None:
        """Close the connections (a later call reconnects; a ``":memory:"`` database is gone)."""
        async with self._connect_lock:
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
            if reader is not None:
                # no statement is ever left open on it, and the writer is still connected, so
                # this is not the last connection: closing runs no checkpoint on the loop
                reader.close()
            if writer is not None:
                await writer.close()

    def notifier(self) -> Notifier:
        """The wake-ups of this database (one per storage): a :class:`SQLiteNotifier`, which
        reaches every process sharing the file; for ``":memory:"``, an in-process notifier.
        Where a file's processes cannot reach each other (no Unix datagram sockets, or a path
        too long for one outside Linux, whose ``/proc/self/fd`` reaches any depth), an
        in-process notifier that is never :attr:`~Notifier.healthy`, said once in a warning:
        waiters then poll storage and the session cache does not serve, so that what another
        process changes is still seen (a revoked session stops working at once)."""
        if self._notifier is None:
            why = "" if self._in_memory else supported(self.path)
            if why is None:
                self._notifier = SQLiteNotifier(self.path)
            elif why:
                logger.warning(
                    "%r: processes sharing this file cannot wake each other (%s), so waiters "
                    "poll it every wait_poll_interval and the session cache is off; "
                    "PostgreSQL or Redis wake every instance at once",
                    self,
                    why,
                )
                self._notifier = UnsharedNotifier()
            else:
                self._notifier = LocalNotifier()
        return self._notifier

    # -- migrations ----------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Create or upgrade the schema to the newest version; idempotent, and safe when several
        processes migrate at once (one ``BEGIN IMMEDIATE`` transaction). Returns the version."""
        return await self._migrate(await self._connected_writer())

    async def _migrate(self, writer: aiosqlite.Connection) -> int:
        async with self._transaction(writer):
            await writer.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            rows = await writer.execute_fetchall("SELECT max(version) FROM schema_version")
            newest, pending = _sql.steps_after("sqlite", _version_of(list(rows)))
            for version, statements in pending:
                for statement in statements:
                    await writer.execute(statement)
                await writer.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, _sql.sqlite_time(datetime.now(UTC))),
                )
        return newest

    async def schema_version(self) -> int:
        """The schema version of the database (0 before the first migration)."""
        exists = await self._read("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'", ())
        if not exists:
            return 0
        return _version_of(await self._read("SELECT max(version) FROM schema_version", ()))

    @asynccontextmanager
    async def _transaction(self, writer: aiosqlite.Connection) -> AsyncIterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction on the writer: committed if the body returns,
        rolled back if it raises or is cancelled (even during BEGIN or COMMIT)."""
        async with self._write_lock:
            try:
                try:
                    await self._waiting_out_locks(lambda: writer.execute("BEGIN IMMEDIATE"))
                    yield
                except BaseException:
                    await _rollback(writer)
                    raise
                await _commit(writer)
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, kind: type[R], id: str) -> R | None:
        """The record of ``kind`` with ``id``, or None."""
        rows = await self._read(f"SELECT * FROM {kind.table} WHERE id = ?", (id,))  # noqa: S608
        return _sql.from_row(kind, rows[0]) if rows else None

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        """The record whose unique ``field`` equals ``value``, or None."""
        _records.check_field(kind, field, kind.unique_fields, "unique")
        rows = await self._read(f"SELECT * FROM {kind.table} WHERE {field} = ?", (value,))  # noqa: S608
        return _sql.from_row(kind, rows[0]) if rows else None

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        """Records whose ``field`` equals ``value``, oldest first (ties by id)."""
        _records.check_field(kind, field, kind.list_fields, "list")
        rows = await self._read(
            f"SELECT * FROM {kind.table} WHERE {field} = ? ORDER BY created_at, id",  # noqa: S608
            (value,),
        )
        return [_sql.from_row(kind, row) for row in rows]

    async def _read(self, sql: str, params: Sequence[object]) -> _Rows:
        """One statement on the loop's reader, run to its end without awaiting."""
        reader = await self._connected_reader()
        if self._in_memory:
            # shared-cache connections lock tables: read between write transactions
            async with self._write_lock:
                if self._reader is None:  # closed while this read waited
                    raise _closed()
                return _fetch_all(self._reader, sql, params)
        return _fetch_all(reader, sql, params)

    # -- writes --------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        """Write ``changes`` in one transaction, or nothing and raise :class:`WriteConflict`."""
        if not changes:
            return
        writer = await self._connected_writer()
        statements = [_statement(change) for change in changes]
        if len(statements) > 1 and not _RUNS_OURS:
            # an aiosqlite that runs nothing of ours on its thread: a trip per statement
            async with self._transaction(writer):
                for statement in statements:
                    await _conditional(writer, *statement)
            return
        # one trip to the writer's thread: a lone statement is its own transaction (the writer
        # autocommits), a batch is begun, written and committed there. It runs to its end
        # (committed, or rolled back) even if the caller is cancelled
        async with self._write_lock:
            try:
                if _RUNS_OURS:
                    await self._waiting_out_locks(lambda: _run_on_writer(writer, statements))
                else:
                    await self._waiting_out_locks(lambda: _conditional(writer, *statements[0]))
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        """One upsert: a counter past its reset time starts again from ``amount``. A read
        (``amount=0``) is a select on the loop's reader, never a write."""
        if not amount:
            rows = await self._read("SELECT count, reset_at FROM counters WHERE key = ?", (key,))
            stored = (int(rows[0][0]), datetime.fromisoformat(rows[0][1])) if rows else None
            return _records.counter_as_read(stored, window=window, now=now)
        now_text = _sql.sqlite_time(now)
        sql = (
            "INSERT INTO counters (key, count, reset_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN counters.reset_at <= ? THEN excluded.count "
            "ELSE counters.count + excluded.count END, "
            "reset_at = CASE WHEN counters.reset_at <= ? THEN excluded.reset_at "
            "ELSE counters.reset_at END "
            "RETURNING count, reset_at"
        )
        rows = await self._write_one(
            sql, (key, amount, _sql.sqlite_time(now + window), now_text, now_text)
        )
        count, reset_at = rows[0]
        return int(count), datetime.fromisoformat(reset_at)

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` records past their ``purge_after``, ``purge_chunk`` rows per
        short transaction so that live writes get in between. Expired counters go too."""
        cutoff = _sql.sqlite_time(now)

        async def delete(table: str, chunk: int) -> int:
            sql = (
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "  # noqa: S608
                "WHERE purge_after IS NOT NULL AND purge_after <= ? ORDER BY purge_after "
                "LIMIT ?) RETURNING 1"
            )
            deleted = len(await self._write_one(sql, (cutoff, chunk)))
            await anyio.lowlevel.checkpoint()
            return deleted

        removed = await _sql.purge_in_chunks(delete, limit, self.purge_chunk)
        await self._write_one("DELETE FROM counters WHERE reset_at <= ?", (cutoff,))
        return removed

    async def _write_one(self, sql: str, params: Sequence[object]) -> _Rows:
        """One statement, its own transaction, in one trip to the writer's thread. It runs to
        its end even if the caller is cancelled, so the write lock never outlives it."""
        writer = await self._connected_writer()
        rows: _Rows = []
        async with self._write_lock:
            try:
                rows = list(
                    await self._waiting_out_locks(lambda: writer.execute_fetchall(sql, params))
                )
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc
        return rows

    async def _waiting_out_locks(self, trip: Callable[[], Awaitable[T]]) -> T:
        """``trip`` (one call on the writer's thread), run to its end even if the caller is
        cancelled; tried again while another process holds the write lock, for up to
        ``busy_timeout`` in all. A try that found the lock taken wrote nothing, so a caller
        cancelled meanwhile stops there: a request's deadline ends the wait, not busy_timeout."""
        give_up: float | None = None
        while True:
            with anyio.CancelScope(shield=True):
                try:
                    return await trip()
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                    now = anyio.current_time()
                    if give_up is None:  # the first try waited its slice already
                        waited = self._wait_per_try.total_seconds()
                        give_up = now - waited + self.busy_timeout.total_seconds()
                    if now >= give_up:
                        raise
            await anyio.lowlevel.checkpoint()  # a cancelled caller stops here


_Statement = tuple[str, list[object], type[Record], str]
"""One change as SQL: the statement, its parameters, and the kind and id of its record."""


def _statement(change: Change) -> _Statement:
    """The conditional statement that writes ``change``."""
    if isinstance(change, Insert):
        row = _sql.to_row(change.record, "sqlite")
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {change.record.table} ({columns}) VALUES ({marks})"  # noqa: S608
        return sql, list(row.values()), type(change.record), change.record.id
    if isinstance(change, Update):
        row = _sql.to_row(change.record, "sqlite")
        record_id = row.pop("id")
        assignments = ", ".join(f"{name} = ?" for name in row)
        sql = f"UPDATE {change.record.table} SET {assignments} WHERE id = ? AND version = ?"  # noqa: S608
        params = [*row.values(), record_id, change.record.version - 1]
        return sql, params, type(change.record), change.record.id
    sql = f"DELETE FROM {change.kind.table} WHERE id = ? AND version = ?"  # noqa: S608
    return sql, [change.id, change.version], change.kind, change.id


_RUNS_OURS = callable(getattr(aiosqlite.Connection, "_execute", None)) and hasattr(
    aiosqlite.Connection, "_conn"
)
"""Whether aiosqlite can run a function of this module on its writer's thread. It has no public
call for that (each of its methods is a trip of its own, so a batch of n changes took n + 2:
BEGIN, the statements, COMMIT); its queue's ``_execute`` and the ``_conn`` it runs on are used
where they are there (every aiosqlite this package allows, 0.20 to 0.22), else a batch goes
statement by statement."""


async def _run_on_writer(writer: aiosqlite.Connection, statements: list[_Statement]) -> None:
    """:func:`_write_all` on the writer's thread, in one trip."""
    run: Callable[[Callable[[], None]], Awaitable[None]] = writer._execute
    await run(lambda: _write_all(writer._conn, statements))


def _write_all(connection: sqlite3.Connection, statements: list[_Statement]) -> None:
    """On the writer's thread: one statement autocommits; several are one ``BEGIN IMMEDIATE``
    transaction, committed, or rolled back by the first that fails."""
    if len(statements) == 1:
        _write_one_change(connection, *statements[0])
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            _write_one_change(connection, *statement)
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.OperationalError):  # nothing may be open any more
            connection.execute("ROLLBACK")
        raise


def _write_one_change(
    connection: sqlite3.Connection,
    sql: str,
    params: Sequence[object],
    kind: type[Record],
    record_id: str,
) -> None:
    """One guarded statement, on the writer's thread (see :func:`_conditional`)."""
    try:
        touched = connection.execute(sql, params).rowcount
    except sqlite3.IntegrityError as exc:
        raise _unique_conflict(kind, str(exc)) from None
    _one_row(touched, kind, record_id)


async def _conditional(
    connection: aiosqlite.Connection,
    sql: str,
    params: Sequence[object],
    kind: type[Record],
    record_id: str,
) -> None:
    """Run one guarded statement: a unique clash or no row touched is a WriteConflict."""
    try:
        # one trip to the writer's thread: a write statement is done once executed, so its
        # cursor holds nothing open and needs no closing trip
        touched = (await connection.execute(sql, params)).rowcount
    except sqlite3.IntegrityError as exc:
        raise _unique_conflict(kind, str(exc)) from None
    _one_row(touched, kind, record_id)


def _one_row(touched: int, kind: type[Record], record_id: str) -> None:
    """A guarded statement that touched no row found its record moved or gone."""
    if touched != 1:
        raise WriteConflict(f"{kind.__name__} {record_id} changed or is gone")


def _unique_conflict(kind: type[Record], message: str) -> WriteConflict:
    # "UNIQUE constraint failed: email_addresses.claimed_email" (or the index's name)
    for field in kind.unique_fields:
        if (
            f"{kind.table}.{field}" in message
            or _sql.unique_index_name(kind.table, field) in message
        ):
            return WriteConflict(f"{kind.__name__}.{field} is taken", unique_field=field)
    return WriteConflict(f"{kind.__name__}: {message}")


async def _commit(connection: aiosqlite.Connection) -> None:
    with anyio.CancelScope(shield=True):  # a cancelled caller must not leave a transaction open
        try:
            await connection.execute("COMMIT")
        except BaseException:
            await _rollback(connection)
            raise


async def _rollback(connection: aiosqlite.Connection) -> None:
    with anyio.CancelScope(shield=True):
        # no transaction may be open (it failed to begin, or was already rolled back)
        with contextlib.suppress(sqlite3.OperationalError):
            await connection.execute("ROLLBACK")


def _probe(path: str) -> None:
    sqlite3.connect(path).close()


def _open_reader(database: str, uri: bool) -> sqlite3.Connection:
    """The reads' connection (opened in a worker thread, used on the event loop's thread).

    ``timeout=0``: a busy database fails the read at once instead of blocking the loop.
    ``query_only``: it never writes, so it never takes the write lock.
    """
    reader = sqlite3.connect(
        database,
        timeout=0,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
    )
    try:
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA query_only = ON")
    except BaseException:
        reader.close()
        raise
    return reader


def _fetch_all(reader: sqlite3.Connection, sql: str, params: Sequence[object]) -> _Rows:
    """Execute, fetch every row and end the statement, with nothing awaited in between: no read
    snapshot outlives its statement (one left open would hide later commits from every read)."""
    try:
        cursor = reader.execute(sql, params)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()
    except sqlite3.Error as exc:
        raise _unavailable(exc) from exc


def _ms(wait: timedelta) -> int:
    return int(wait.total_seconds() * 1000)


def _version_of(rows: _Rows) -> int:
    """The version a ``SELECT max(version)`` answered (0 for an empty table)."""
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _unavailable(exc: sqlite3.Error) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"SQLite: {exc}")


def _closed() -> StorageUnavailableError:
    return StorageUnavailableError(long_message="SQLite: the storage was closed")


__all__ = ["SQLiteStorage"]
