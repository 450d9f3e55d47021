"""PostgreSQL storage (``magiclink[postgres]``), with asyncpg.

Records live in real tables (see ``_sql.py``: ``timestamptz``, ``jsonb``, partial unique indexes
that let NULLs be). Every :meth:`PostgresStorage.apply` is one transaction of conditional
statements (``UPDATE ... WHERE id = $n AND version = $m``, inserts guarded by the primary key and
unique indexes), never a read followed by a write: of two racing consumers of one link, the second
finds the version moved and changes nothing. A batch of one change is one statement, atomic by
itself, so it needs no ``BEGIN``/``COMMIT`` round trips; a batch of several is one call of a batch
function of the schema, which runs the same statements in order, in one round trip: the one
``migrate()`` writes for this magiclink's records (``_sql.shaped_batch_function``), else the
general ``magiclink_apply`` of version 3 (on a schema migrated before version 3, the batch is a
transaction as before).

The schema is created and upgraded by :meth:`PostgresStorage.migrate` (``magiclink migrate
--database postgresql://...``), under an advisory lock so two processes may migrate at once.

:class:`PostgresNotifier` carries wake-ups between app instances with ``LISTEN``/``NOTIFY`` on one
channel; the payload names the waiters' channel, and each instance fans out locally.

An unreachable server raises :class:`~magiclink_core.domain.errors.StorageUnavailableError`
within ``connect_timeout`` (or ``command_timeout`` for a server that stops answering); the pool
reconnects by itself when the server is back.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType

import anyio

from ..domain.errors import StorageUnavailableError
from ..domain.models import Record
from ..ports import Change, Delete, Insert, R, Update, WriteConflict
from . import _records, _sql
from ._asyncpg import (
    PgConnection,
    PgPool,
    PgRow,
    asyncpg,
    is_unavailable,
    unavailable,
)
from ._connections import ConnectionLimits
from ._pg_connections import keep_session, release, rollback, usable
from ._settle import seen_through
from .postgres_notifier import PostgresNotifier

# the first key of pg_advisory_xact_lock(int, int) while migrating ("ML" + "mg"); the second is
# the schema's hash, so two schemas migrate independently
_MIGRATION_LOCK = 0x4D4C6D67
# Table and column names in SQL text come from the record classes and _records.check_field,
# never from callers: hence the S608 exemptions below.

# a racing transaction lost; nothing of it was written, so the caller may retry
_CONFLICTS: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


class PostgresStorage(ConnectionLimits):
    """Storage in a PostgreSQL database.

    :param dsn: a libpq connection string (``postgresql://user@host:5432/db``); or
    :param pool: an asyncpg pool you made (then ``schema`` and the timeouts are yours to set,
        and :meth:`close` leaves the pool open).
    :param schema: the schema holding magiclink's tables (default: the server's search_path).
    :param connect_timeout: seconds to wait for a connection before failing.
    :param command_timeout: seconds a statement may take before failing.
    :param max_connections: the pool's size.
    :param notify_channel: the LISTEN/NOTIFY channel of :meth:`notifier`.
    :param purge_chunk: rows deleted per short transaction while purging.

    Connecting is lazy: the pool is made on first use. Run :meth:`migrate` once per deploy.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: PgPool | None = None,
        schema: str | None = None,
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        max_connections: int = 10,
        notify_channel: str = "magiclink",
        purge_chunk: int = 500,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ValueError("give PostgresStorage a dsn or a pool, not both")
        super().__init__(connect_timeout, command_timeout, max_connections)
        self.dsn = dsn
        self.schema = schema
        self.notify_channel = notify_channel
        self.purge_chunk = max(1, purge_chunk)
        self._pool = pool
        self._owns_pool = pool is None
        self._pool_lock = anyio.Lock()
        # connections of this storage's own pool kept between calls: taking and giving back
        # one of asyncpg's costs about 40 µs of CPU per call (an acquire, a shielded release
        # with its timer), nearly half of what a one-statement write costs on its own
        self._parked: list[PgConnection] = []
        self._queued = 0  # calls waiting in the pool for a connection
        self._kept = 0  # calls that ended cleanly, for _HAND_BACK_EVERY
        self._notifier: PostgresNotifier | None = None
        # how a batch is sent in one statement: the function written for these records, else
        # the schema's general one (version 3); None once neither is there (a transaction)
        self._batch_sql: str | None = _APPLY_SHAPED_SQL

    def __repr__(self) -> str:
        return f"PostgresStorage(schema={self.schema!r})"

    # -- connections ---------------------------------------------------------------------------

    def server_settings(self) -> dict[str, str]:
        """Session settings of every connection (the search_path when ``schema`` is set)."""
        settings = {"application_name": "magiclink"}
        if self.schema is not None:
            settings["search_path"] = self.schema
        return settings

    async def _get_pool(self) -> PgPool:
        pool = self._pool
        if pool is None:
            async with self._pool_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=0,
                        max_size=self.max_connections,
                        timeout=self.connect_timeout,
                        command_timeout=self.command_timeout,
                        server_settings=self.server_settings(),
                        reset=keep_session,
                        # no idle timer: asyncpg re-arms one on every release (a timer set and
                        # cancelled per storage call); at most max_connections stay open
                        max_inactive_connection_lifetime=0,
                    )
        return pool

    def _connection(self) -> _Borrowed:
        """A connection for one call, as ``async with``: the one the last call kept, or one
        from the pool; kept or given back after it. Connection failures become
        StorageUnavailableError."""
        return _Borrowed(self)

    async def _take(self) -> tuple[PgPool, PgConnection]:
        """A connection for one call: the last one parked if it is still open, else one from
        the pool."""
        pool = self._pool
        parked = self._parked
        while parked and pool is not None:
            connection = parked.pop()
            if usable(connection):
                return pool, connection
            await release(pool, connection, _RELEASE_AFTER_FAILURE)  # the server dropped it
        pool = await self._get_pool()
        # the wait for a free connection is bounded by a deadline of this task's, not by
        # asyncpg's acquire(timeout=...), which runs the acquire as a task of its own (two more
        # trips through the event loop on every storage call). asyncpg runs on asyncio only, so
        # asyncio's own timeout does (a third of anyio.fail_after's cost)
        self._queued += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                return pool, await pool.acquire()
        finally:
            self._queued -= 1

    def _may_park(self, pool: PgPool, connection: PgConnection) -> bool:
        """Whether a connection that served a call cleanly is kept for the next call instead of
        going back to asyncpg's pool. Only a pool this storage made (a caller's pool is shared
        with its other users), while nobody waits in that pool (else the release hands it to
        them), and with no transaction left open. Every ``_HAND_BACK_EVERY``-th one goes back
        anyway, so asyncpg still retires connections that reach its ``max_queries``."""
        self._kept += 1
        return (
            self._owns_pool
            and pool is self._pool
            and not self._queued
            and self._kept % _HAND_BACK_EVERY != 0
            and not connection.is_in_transaction()
        )

    async def close(self) -> None:
        """Close the pool (if this storage made it) and the notifier it handed out."""
        if self._notifier is not None:
            await self._notifier.close()
            self._notifier = None
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            parked, self._parked = self._parked, []
            for connection in parked:  # asyncpg's close waits for every connection given out
                await release(pool, connection, self.command_timeout)
            await pool.close()

    def notifier(self) -> PostgresNotifier:
        """A LISTEN/NOTIFY notifier on this storage's database (one per storage)."""
        if self._notifier is None:
            if self.dsn is not None:
                self._notifier = PostgresNotifier(
                    self.dsn,
                    channel=self.notify_channel,
                    connect_timeout=self.connect_timeout,
                    server_settings=self.server_settings(),
                    notify=self._notify,  # not a new server backend per publish
                )
            else:
                self._notifier = PostgresNotifier(pool=self._pool, channel=self.notify_channel)
        return self._notifier

    async def _notify(self, channel: str, payload: str) -> None:
        """A ``NOTIFY`` on one of this storage's connections: how its notifier publishes while
        it has no listening connection (never entered, or reconnecting)."""
        async with self._connection() as connection:
            await connection.execute("SELECT pg_notify($1, $2)", channel, payload)

    # -- migrations ----------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Create or upgrade the schema to the newest version and return it. Idempotent; a
        transaction-scoped advisory lock makes concurrent migrations take turns."""
        async with self._connection() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _MIGRATION_LOCK
            )
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = await connection.fetchval(
                "SELECT coalesce(max(version), 0) FROM schema_version"
            )
            newest, pending = _sql.steps_after("postgres", current)
            for version, statements in pending:
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)", version
                )
            # not a numbered step: its name follows this magiclink's records, and the one an
            # older magiclink of a rolling upgrade calls stays
            if not await connection.fetchval(
                "SELECT to_regprocedure($1) IS NOT NULL", f"{_SHAPED_FUNCTION}(jsonb)"
            ):
                await connection.execute(_SHAPED_FUNCTION_SQL)
        self._batch_sql = _APPLY_SHAPED_SQL
        return newest

    async def schema_version(self) -> int:
        """The schema version of the database (0 before the first migration)."""
        async with self._connection() as connection:
            exists = await connection.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            if not exists:
                return 0
            return int(
                await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            )

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, kind: type[R], id: str) -> R | None:
        """The record of ``kind`` with ``id``, or None."""
        row = await self._fetchrow(f"SELECT * FROM {kind.table} WHERE id = $1", id)  # noqa: S608
        return None if row is None else _sql.from_row(kind, row)

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        """The record whose unique ``field`` equals ``value``, or None."""
        _records.check_field(kind, field, kind.unique_fields, "unique")
        row = await self._fetchrow(f"SELECT * FROM {kind.table} WHERE {field} = $1", value)  # noqa: S608
        return None if row is None else _sql.from_row(kind, row)

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        """Records whose ``field`` equals ``value``, oldest first (ties by id)."""
        _records.check_field(kind, field, kind.list_fields, "list")
        sql = f"SELECT * FROM {kind.table} WHERE {field} = $1 ORDER BY created_at, id"  # noqa: S608
        async with self._connection() as connection:
            rows = await connection.fetch(sql, value)
        return [_sql.from_row(kind, row) for row in rows]

    async def _fetchrow(self, sql: str, *params: object) -> PgRow | None:
        async with self._connection() as connection:
            return await connection.fetchrow(sql, *params)

    # -- writes --------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        """Write ``changes`` in one transaction, or nothing and raise :class:`WriteConflict`."""
        if not changes:
            return
        try:
            async with self._connection() as connection:
                if len(changes) == 1:
                    # one statement is its own transaction: no BEGIN and COMMIT round trips.
                    # Seen through for the reason the COMMIT is below
                    await seen_through(self._write(connection, changes[0]))
                    return
                while (sql := self._batch_sql) is not None:
                    try:  # one statement, seen through as above
                        await seen_through(self._write_batch(connection, sql, changes))
                    except asyncpg.UndefinedFunctionError:
                        # not migrated by this magiclink (or before version 3): the next way
                        self._batch_sql = _APPLY_BATCH_SQL if sql == _APPLY_SHAPED_SQL else None
                    else:
                        return
                transaction = connection.transaction()
                try:
                    await transaction.start()
                    for change in changes:
                        await self._write(connection, change)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await rollback(connection, transaction)
                    raise
                # once COMMIT is sent, see it through: a cancelled caller must not leave an
                # outcome that lands after apply() has returned (a server with no answer within
                # the grace: TimeoutError, unavailable)
                await seen_through(transaction.commit())
        except _CONFLICTS as exc:
            raise WriteConflict(f"a concurrent transaction won: {type(exc).__name__}") from exc

    async def _write(self, connection: PgConnection, change: Change) -> None:
        """One conditional statement (a seam the fault tests use to cut a batch in half)."""
        if isinstance(change, Insert):
            row = _sql.to_row(change.record, "postgres")
            sql = _insert_sql(change.record.table, tuple(row))
            params = list(row.values())
        elif isinstance(change, Update):
            row = _sql.to_row(change.record, "postgres")
            del row["id"]
            sql = _update_sql(change.record.table, tuple(row))
            params = [*row.values(), change.record.id, change.record.version - 1]
        else:
            sql = f"DELETE FROM {change.kind.table} WHERE id = $1 AND version = $2"  # noqa: S608
            params = [change.id, change.version]
        try:
            status = await connection.execute(sql, *params)
        except asyncpg.UniqueViolationError as exc:
            raise _unique_conflict(exc) from None
        if not status.endswith(" 1"):  # "INSERT 0 1", "UPDATE 1", "DELETE 1"
            raise _changed_or_gone(change)

    async def _write_batch(
        self, connection: PgConnection, sql: str, changes: Sequence[Change]
    ) -> None:
        """Every change of a batch in one statement, one round trip: ``sql`` calls a batch
        function of the schema, which runs the statements :meth:`_write` would, in order, and
        raises ``BATCH_CONFLICT`` naming the change whose row had moved or gone."""
        try:
            await connection.execute(sql, _batch_json(changes))
        except asyncpg.UniqueViolationError as exc:
            raise _unique_conflict(exc) from None
        except asyncpg.PostgresError as exc:
            if exc.sqlstate != _sql.BATCH_CONFLICT:
                raise
            raise _changed_or_gone(changes[int(exc.detail) - 1]) from None

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        """One upsert: a counter past its reset time starts again from ``amount``. A read
        (``amount=0``) is a plain select: no row written, locked or committed."""
        if not amount:
            found = await self._fetchrow("SELECT count, reset_at FROM counters WHERE key = $1", key)
            stored = None if found is None else (int(found["count"]), found["reset_at"])
            return _records.counter_as_read(stored, window=window, now=now)
        sql = (
            "INSERT INTO counters (key, count, reset_at) VALUES ($1, $4, $2) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN counters.reset_at <= $3 THEN EXCLUDED.count "
            "ELSE counters.count + EXCLUDED.count END, "
            "reset_at = CASE WHEN counters.reset_at <= $3 THEN EXCLUDED.reset_at "
            "ELSE counters.reset_at END "
            "RETURNING count, reset_at"
        )
        async with self._connection() as connection:
            row = await connection.fetchrow(sql, key, now + window, now, amount)
        if row is None:  # an upsert with RETURNING always returns its row
            raise StorageUnavailableError(
                long_message="PostgreSQL: the counter upsert returned no row"
            )
        return int(row["count"]), row["reset_at"]

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` records past their ``purge_after``, ``purge_chunk`` rows per
        short transaction; rows a live transaction holds are skipped, not waited for."""

        async def delete(table: str, chunk: int) -> int:
            sql = (
                f"DELETE FROM {table} WHERE purge_after <= $1 AND id IN ("  # noqa: S608
                f"SELECT id FROM {table} WHERE purge_after <= $1 "
                "ORDER BY purge_after LIMIT $2 FOR UPDATE SKIP LOCKED)"
            )
            async with self._connection() as connection:
                status = await connection.execute(sql, now, chunk)
            return int(status.split()[-1])

        removed = await _sql.purge_in_chunks(delete, limit, self.purge_chunk)
        async with self._connection() as connection:
            await connection.execute("DELETE FROM counters WHERE reset_at <= $1", now)
        return removed


_HAND_BACK_EVERY = 1024
"""Of the connections that could be parked, every this-many-th goes back to asyncpg's pool."""

_RELEASE_AFTER_FAILURE = 0.25
"""Seconds a connection cut off mid-call may take to be reset before it is closed instead."""


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """The INSERT of a row of ``columns``: one text per record kind, made once (asyncpg's
    statement cache then finds it prepared)."""
    marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


@functools.cache
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    """The compare-and-set UPDATE of ``columns`` (then the id and the version it must still
    have): one text per record kind, made once."""
    sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(columns, start=1))
    n = len(columns)
    return f"UPDATE {table} SET {sets} WHERE id = ${n + 1} AND version = ${n + 2}"  # noqa: S608


_APPLY_BATCH_SQL = f"SELECT {_sql.APPLY_BATCH_FUNCTION}($1::jsonb)"
_SHAPED_FUNCTION, _SHAPED_FUNCTION_SQL = _sql.shaped_batch_function()
_APPLY_SHAPED_SQL = f"SELECT {_SHAPED_FUNCTION}($1::jsonb)"


def _batch_json(changes: Sequence[Change]) -> str:
    """The argument of ``magiclink_apply``: each change as its operation, table, the id and
    version its row must still have (updates, deletes) and its columns (inserts, updates)."""
    batch: list[dict[str, object]] = []
    for change in changes:
        if isinstance(change, Insert):
            row = _sql.to_row(change.record, "postgres", as_json=True)
            batch.append({"op": "insert", "table": change.record.table, "row": row})
        elif isinstance(change, Update):
            row = _sql.to_row(change.record, "postgres", as_json=True)
            del row["id"]
            record = change.record
            batch.append(
                {
                    "op": "update",
                    "table": record.table,
                    "id": record.id,
                    "version": record.version - 1,
                    "row": row,
                }
            )
        else:
            batch.append(
                {
                    "op": "delete",
                    "table": change.kind.table,
                    "id": change.id,
                    "version": change.version,
                }
            )
    return json.dumps(batch, separators=(",", ":"))


class _Borrowed:
    """One call's connection (:meth:`PostgresStorage._connection`). A class rather than an
    ``asynccontextmanager``: the generator, its context object and the ``StopAsyncIteration``
    ending it cost about 10k instructions on every storage call (callgrind; a one-statement
    write costs about 465k in all)."""

    __slots__ = ("_held", "_pool", "_storage")

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def __aenter__(self) -> PgConnection:
        try:
            self._pool, self._held = await self._storage._take()
        except BaseException as exc:
            _raise_translated(exc)
            raise
        return self._held

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # the server answered a PostgresError: the connection is fine, unless the error says it
        # is gone (asyncpg's lost-connection errors are PostgresErrors too). Anything else (a
        # conflict found, a cancellation) may have left it mid-call
        healthy = exc is None or (
            isinstance(exc, asyncpg.PostgresError) and not is_unavailable(exc)
        )
        storage, pool, connection = self._storage, self._pool, self._held
        try:
            if healthy and storage._may_park(pool, connection):
                storage._parked.append(connection)
            else:
                # cut off mid-call (a deadline, a server gone silent), the release's reset
                # would wait on that server past the caller's deadline: give it a moment,
                # then asyncpg closes the connection
                await release(
                    pool,
                    connection,
                    storage.command_timeout if healthy else _RELEASE_AFTER_FAILURE,
                )
        except BaseException as failure:
            _raise_translated(failure)
            raise
        if exc is not None:
            _raise_translated(exc)


def _raise_translated(exc: BaseException) -> None:
    """Raise what ``exc`` means to the storage's callers, if it is not itself that: missing or
    out-of-date tables, or a database that cannot be reached now."""
    if isinstance(exc, asyncpg.UndefinedTableError):
        raise StorageUnavailableError(
            long_message="magiclink's tables are missing: run `magiclink migrate`"
        ) from exc
    if isinstance(exc, asyncpg.UndefinedColumnError):
        raise _sql.out_of_date() from exc
    if is_unavailable(exc):
        raise unavailable(exc) from exc


def _changed_or_gone(change: Change) -> WriteConflict:
    """The conflict of a change whose conditional statement matched no row."""
    if isinstance(change, Delete):
        kind, record_id = change.kind, change.id
    else:
        kind, record_id = type(change.record), change.record.id
    return WriteConflict(f"{kind.__name__} {record_id} changed or is gone")


def _unique_conflict(exc: asyncpg.UniqueViolationError) -> WriteConflict:
    """The conflict of an insert or update that hit a unique index (or the primary key), named
    by the kind of the table the server reports."""
    table, constraint = exc.table_name or "", exc.constraint_name or "a unique value"
    kind: type[Record] | None = _records.kinds_by_table().get(table)
    if kind is None:
        return WriteConflict(f"{table or 'a table'}: {constraint} is taken")
    for field in kind.unique_fields:
        if constraint == _sql.unique_index_name(kind.table, field):
            return WriteConflict(f"{kind.__name__}.{field} is taken", unique_field=field)
    return WriteConflict(f"{kind.__name__}: {constraint} is taken")


__all__ = ["PostgresStorage"]
