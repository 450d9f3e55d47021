"""SQLite storage (``magiclink[sqlite]``): the embedded default for one process and the demo.

Records live in real tables (see ``_sql.py``), in WAL mode so reads never wait for the writer.
Every :meth:`SQLiteStorage.apply` is one ``BEGIN IMMEDIATE`` transaction of conditional
statements (``UPDATE ... WHERE id = ? AND version = ?``, inserts guarded by the primary key and
unique indexes): all of it commits or none of it does, and it survives a crash or a restart.

Connecting is lazy: the first call opens the database (and, with ``auto_migrate``, the default,
creates or upgrades the schema). :meth:`SQLiteStorage.open` does that eagerly.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..domain.errors import StorageUnavailableError
from ..domain.models import Record
from ..ports import Change, Insert, R, Update, WriteConflict
from . import _sql
from ._extras import missing_extra

try:
    import aiosqlite
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("SQLiteStorage", "aiosqlite", "sqlite") from exc

_MEMORY = ":memory:"
_Rows = list[aiosqlite.Row]
# Table and column names in SQL text come from the record classes and _sql.check_field, never
# from callers: hence the S608 exemptions below.


class SQLiteStorage:
    """Storage in one SQLite file.

    :param path: the database file (created if missing), or ``":memory:"`` for a throwaway one.
    :param auto_migrate: create or upgrade the schema when first connecting (default True: an
        embedded database has nobody else to run ``magiclink migrate``).
    :param busy_timeout: how long a write waits for another process's write before failing with
        :class:`~magiclink_core.domain.errors.StorageUnavailableError`.
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
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = anyio.Lock()
        self._connect_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **options: Any) -> SQLiteStorage:
        """Create the storage and connect (and migrate, unless ``auto_migrate=False``) now."""
        storage = cls(path, **options)
        await storage.connect()
        return storage

    # -- connections ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the database now (idempotent); every other method does it when first needed."""
        async with self._connect_lock:
            if self._writer is not None:
                return
            writer = await self._open_connection()
            try:
                reader = writer if self.path == _MEMORY else await self._open_connection()
            except BaseException:
                await writer.close()
                raise
            self._writer, self._reader = writer, reader
        if self.auto_migrate:
            await self.migrate()

    async def _open_connection(self) -> aiosqlite.Connection:
        try:
            # open once in a worker thread first: a file that cannot be opened fails here,
            # cleanly (aiosqlite leaves a stray thread callback behind when its connect fails)
            if self.path != _MEMORY:
                await anyio.to_thread.run_sync(_probe, self.path)
            connection = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        try:
            connection.row_factory = aiosqlite.Row
            timeout_ms = int(self.busy_timeout.total_seconds() * 1000)
            await connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            await connection.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed transaction survives power loss too, not only a crash
            await connection.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            await connection.close()
            raise _unavailable(exc) from exc
        return connection

    async def _connections(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._writer is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        return self._writer, self._reader

    async def close(self) -> None:
        """Close the connections (a later call reconnects)."""
        async with self._connect_lock:
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
            if reader is not None and reader is not writer:
                await reader.close()
            if writer is not None:
                await writer.close()

    # -- migrations ----------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Create or upgrade the schema to the newest version; idempotent, and safe when several
        processes migrate at once (one ``BEGIN IMMEDIATE`` transaction). Returns the version."""
        steps = _sql.migrations("sqlite")
        async with self._transaction() as writer:
            await writer.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = await self._schema_version(writer)
            if current > steps[-1][0]:
                raise RuntimeError(
                    f"the database schema is at version {current}, newer than this "
                    f"magiclink knows ({steps[-1][0]}): upgrade magiclink"
                )
            for version, statements in steps:
                if version <= current:
                    continue
                for statement in statements:
                    await writer.execute(statement)
                await writer.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, _sql.sqlite_time(datetime.now(UTC))),
                )
        return steps[-1][0]

    async def schema_version(self) -> int:
        """The schema version of the database (0 before the first migration)."""
        _, reader = await self._connections()
        try:
            exists = await self._fetch_all(
                reader, "SELECT 1 FROM sqlite_master WHERE name = 'schema_version'", ()
            )
            return await self._schema_version(reader) if exists else 0
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc

    @staticmethod
    async def _schema_version(connection: aiosqlite.Connection) -> int:
        async with connection.execute("SELECT max(version) FROM schema_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on the writer: committed if the body returns,
        rolled back if it raises or is cancelled (even during BEGIN or COMMIT)."""
        writer, _ = await self._connections()
        async with self._write_lock:
            try:
                try:
                    await writer.execute("BEGIN IMMEDIATE")
                    yield writer
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
        _sql.check_field(kind, field, kind.unique_fields, "unique")
        rows = await self._read(f"SELECT * FROM {kind.table} WHERE {field} = ?", (value,))  # noqa: S608
        return _sql.from_row(kind, rows[0]) if rows else None

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        """Records whose ``field`` equals ``value``, oldest first (ties by id)."""
        _sql.check_field(kind, field, kind.list_fields, "list")
        rows = await self._read(
            f"SELECT * FROM {kind.table} WHERE {field} = ? ORDER BY created_at, id",  # noqa: S608
            (value,),
        )
        return [_sql.from_row(kind, row) for row in rows]

    async def _read(self, sql: str, params: Sequence[Any]) -> _Rows:
        _, reader = await self._connections()
        try:
            if reader is self._writer:  # ":memory:": one connection, so not inside a write
                async with self._write_lock:
                    return await self._fetch_all(reader, sql, params)
            return await self._fetch_all(reader, sql, params)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc

    @staticmethod
    async def _fetch_all(
        connection: aiosqlite.Connection, sql: str, params: Sequence[Any]
    ) -> _Rows:
        async with connection.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # -- writes --------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        """Write ``changes`` in one transaction, or nothing and raise :class:`WriteConflict`."""
        if not changes:
            return
        async with self._transaction() as writer:
            for change in changes:
                await _write(writer, change)

    async def increment(
        self, key: str, *, window: timedelta, now: datetime
    ) -> tuple[int, datetime]:
        """One upsert: a counter past its reset time starts again at 1."""
        writer, _ = await self._connections()
        now_text = _sql.sqlite_time(now)
        sql = (
            "INSERT INTO counters (key, count, reset_at) VALUES (?, 1, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN counters.reset_at <= ? THEN 1 ELSE counters.count + 1 END, "
            "reset_at = CASE WHEN counters.reset_at <= ? THEN excluded.reset_at "
            "ELSE counters.reset_at END "
            "RETURNING count, reset_at"
        )
        async with self._write_lock:
            try:
                rows = await self._fetch_all(
                    writer, sql, (key, _sql.sqlite_time(now + window), now_text, now_text)
                )
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc
        count, reset_at = rows[0]
        return int(count), datetime.fromisoformat(reset_at)

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` records past their ``purge_after``, ``purge_chunk`` rows per
        short transaction so that live writes get in between. Expired counters go too."""
        writer, _ = await self._connections()
        cutoff = _sql.sqlite_time(now)
        removed = 0
        for kind in _sql.kinds_by_table().values():
            while removed < limit:
                chunk = min(self.purge_chunk, limit - removed)
                deleted = await self._delete_chunk(writer, kind, cutoff, chunk)
                removed += deleted
                await anyio.lowlevel.checkpoint()
                if deleted < chunk:
                    break
        async with self._write_lock:
            try:
                await writer.execute("DELETE FROM counters WHERE reset_at <= ?", (cutoff,))
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc
        return removed

    async def _delete_chunk(
        self, writer: aiosqlite.Connection, kind: type[Record], cutoff: str, chunk: int
    ) -> int:
        sql = (
            f"DELETE FROM {kind.table} WHERE id IN (SELECT id FROM {kind.table} "  # noqa: S608
            "WHERE purge_after IS NOT NULL AND purge_after <= ? ORDER BY purge_after LIMIT ?)"
        )
        async with self._write_lock:
            try:
                async with writer.execute(sql, (cutoff, chunk)) as cursor:
                    return max(cursor.rowcount, 0)
            except sqlite3.Error as exc:
                raise _unavailable(exc) from exc


async def _write(connection: aiosqlite.Connection, change: Change) -> None:
    if isinstance(change, Insert):
        row = _sql.to_row(change.record, "sqlite")
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {change.record.table} ({columns}) VALUES ({marks})"  # noqa: S608
        await _conditional(
            connection, sql, list(row.values()), type(change.record), change.record.id
        )
    elif isinstance(change, Update):
        row = _sql.to_row(change.record, "sqlite")
        record_id = row.pop("id")
        assignments = ", ".join(f"{name} = ?" for name in row)
        sql = f"UPDATE {change.record.table} SET {assignments} WHERE id = ? AND version = ?"  # noqa: S608
        params = [*row.values(), record_id, change.record.version - 1]
        await _conditional(connection, sql, params, type(change.record), change.record.id)
    else:
        sql = f"DELETE FROM {change.kind.table} WHERE id = ? AND version = ?"  # noqa: S608
        await _conditional(connection, sql, [change.id, change.version], change.kind, change.id)


async def _conditional(
    connection: aiosqlite.Connection,
    sql: str,
    params: Sequence[Any],
    kind: type[Record],
    record_id: str,
) -> None:
    """Run one guarded statement: a unique clash or no row touched is a WriteConflict."""
    try:
        async with connection.execute(sql, params) as cursor:
            touched = cursor.rowcount
    except sqlite3.IntegrityError as exc:
        raise _unique_conflict(kind, str(exc)) from None
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


def _unavailable(exc: sqlite3.Error) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"SQLite: {exc}")


__all__ = ["SQLiteStorage"]
