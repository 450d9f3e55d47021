"""What the SQL adapters (SQLite, PostgreSQL) share: the versioned schema as data, rendered per
dialect, and the mapping between records and rows.

A table per record kind, a column per model field. Nested models (``verification``) are JSON;
times are ``timestamptz`` in PostgreSQL and fixed-width UTC ISO-8601 text in SQLite, so text
order is time order. ``MIGRATIONS`` is append-only: a released step never changes, a model field
added later gets a new step (``tests/core/test_storage_sqlite.py`` checks every model field has a
column after the last step).
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal, Protocol, Union, get_args, get_origin

from ..domain.errors import StorageUnavailableError
from ..domain.models import Frozen, Record
from ..ports import R
from ._records import kinds_by_table

ColumnType = Literal["text", "int", "time", "json"]
Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()  # nullable unique: NULLs never clash
    indexed: tuple[str, ...] = ()


def _record_table(
    name: str, *columns: Column, unique: tuple[str, ...] = (), indexed: tuple[str, ...] = ()
) -> Table:
    common = (
        Column("id", "text"),
        Column("version", "int"),
        Column("created_at", "time"),
        Column("updated_at", "time"),
        Column("purge_after", "time", nullable=True),
    )
    return Table(name, common + columns, unique, indexed)


def _c(name: str, type_: ColumnType = "text", nullable: bool = False) -> Column:
    return Column(name, type_, nullable)


# -- version 1: frozen once released ---------------------------------------------------------

V1_TABLES: tuple[Table, ...] = (
    _record_table(
        "clients",
        _c("token_digest"),
        _c("sign_in_id", nullable=True),
        _c("sign_up_id", nullable=True),
        _c("last_active_at", "time"),
        unique=("token_digest",),
    ),
    _record_table("users", _c("primary_email_address_id", nullable=True)),
    _record_table(
        "email_addresses",
        _c("user_id"),
        _c("email"),
        _c("claimed_email", nullable=True),
        _c("verification", "json", nullable=True),
        _c("client_id", nullable=True),
        unique=("claimed_email",),
        indexed=("user_id", "email"),
    ),
    _record_table(
        "sessions",
        _c("user_id"),
        _c("client_id"),
        _c("token_digest", nullable=True),
        _c("status"),
        _c("last_active_at", "time"),
        _c("expire_at", "time"),
        _c("ended_at", "time", nullable=True),
        _c("user_agent"),
        _c("ip_address"),
        unique=("token_digest",),
        indexed=("user_id", "client_id"),
    ),
    _record_table(
        "sign_ups",
        _c("client_id"),
        _c("email_address"),
        _c("status"),
        _c("verification", "json", nullable=True),
        _c("created_user_id", nullable=True),
        _c("created_session_id", nullable=True),
        _c("abandon_at", "time"),
    ),
    _record_table(
        "sign_ins",
        _c("client_id"),
        _c("identifier"),
        _c("user_id", nullable=True),
        _c("email_address_id"),
        _c("status"),
        _c("verification", "json", nullable=True),
        _c("created_session_id", nullable=True),
        _c("abandon_at", "time"),
    ),
    _record_table(
        "links",
        _c("attempt_kind"),
        _c("attempt_id"),
        _c("client_id"),
        _c("expire_at", "time"),
        _c("consumed_at", "time", nullable=True),
        _c("consumed_by_client", nullable=True),
        indexed=("attempt_id",),
    ),
)

_SQL_TYPES: dict[Dialect, dict[ColumnType, str]] = {
    "sqlite": {"text": "TEXT", "int": "INTEGER", "time": "TEXT", "json": "TEXT"},
    "postgres": {"text": "text", "int": "bigint", "time": "timestamptz", "json": "jsonb"},
}


def unique_index_name(table: str, field: str) -> str:
    return f"{table}_{field}_key"


def render_tables(tables: tuple[Table, ...], dialect: Dialect) -> list[str]:
    """CREATE statements (idempotent: IF NOT EXISTS) for ``tables`` and their indexes."""
    types_ = _SQL_TYPES[dialect]
    statements: list[str] = []
    for table in tables:
        columns = ",\n  ".join(
            f"{c.name} {types_[c.type]}{'' if c.nullable else ' NOT NULL'}"
            + (" PRIMARY KEY" if c.name == "id" else "")
            for c in table.columns
        )
        statements.append(f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {columns}\n)")
        for field in table.unique:
            statements.append(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {unique_index_name(table.name, field)} "
                f"ON {table.name} ({field}) WHERE {field} IS NOT NULL"
            )
        for field in table.indexed:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {table.name}_{field}_idx ON {table.name} ({field})"
            )
        # list() orders by (created_at, id) within a field value; purge scans by purge_after
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {table.name}_purge_after_idx ON {table.name} "
            "(purge_after) WHERE purge_after IS NOT NULL"
        )
    return statements


def counters_table(dialect: Dialect) -> str:
    time = _SQL_TYPES[dialect]["time"]
    return (
        "CREATE TABLE IF NOT EXISTS counters (\n"
        "  key TEXT PRIMARY KEY,\n"
        "  count BIGINT NOT NULL,\n"
        f"  reset_at {time} NOT NULL\n)"
    )


def v2(dialect: Dialect) -> list[str]:
    """Version 2: a session carries its user's primary address (who is signed in, without a
    read), and a user holds an address once (``user_email``, unique). Addresses a user already
    holds twice keep the oldest as the one that counts."""
    text = _SQL_TYPES[dialect]["text"]
    return [
        f"ALTER TABLE sessions ADD COLUMN email_address {text} NOT NULL DEFAULT ''",
        f"ALTER TABLE email_addresses ADD COLUMN user_email {text}",
        "UPDATE email_addresses SET user_email = user_id || '/' || email WHERE NOT EXISTS ("
        "SELECT 1 FROM email_addresses AS older WHERE older.user_id = email_addresses.user_id "
        "AND older.email = email_addresses.email AND (older.created_at < "
        "email_addresses.created_at OR (older.created_at = email_addresses.created_at "
        "AND older.id < email_addresses.id)))",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {unique_index_name('email_addresses', 'user_email')} "
        "ON email_addresses (user_email) WHERE user_email IS NOT NULL",
    ]


APPLY_BATCH_FUNCTION = "magiclink_apply"
"""PostgreSQL's function (schema version 3) that writes a batch of changes in one statement."""

BATCH_CONFLICT = "ML409"
"""The SQLSTATE :data:`APPLY_BATCH_FUNCTION` raises when a change finds its row moved or gone;
the error's DETAIL is that change's position in the batch, counted from 1."""


_EACH_CHANGE_TOUCHED_ITS_ROW = f"""    GET DIAGNOSTICS touched = ROW_COUNT;
    IF touched <> 1 THEN
      RAISE EXCEPTION 'magiclink: change % of the batch found its row moved or gone', position
        USING ERRCODE = '{BATCH_CONFLICT}', DETAIL = position::text;
    END IF;
  END LOOP;
END
$fn$"""
"""How each batch function ends a change: one row touched, or the batch fails naming it."""


def v3_postgres() -> list[str]:
    """Version 3 (PostgreSQL): :data:`APPLY_BATCH_FUNCTION`, which applies a batch given as a
    JSON array, change by change in order, with the statements a transaction would send
    (``INSERT``, ``UPDATE ... WHERE id AND version``, ``DELETE ... WHERE id AND version``): one
    round trip where ``BEGIN``, the statements and ``COMMIT`` take n + 2. Being one statement,
    it is all or nothing. Table and column names come from the JSON quoted by ``format('%I')``;
    the values go through ``jsonb_populate_record`` as the table's own column types."""
    # the f-string fills in this module's two constants, nothing a caller gives
    return [
        f"""CREATE OR REPLACE FUNCTION {APPLY_BATCH_FUNCTION}(changes jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  change jsonb;
  position integer := 0;
  names text;
  touched bigint;
BEGIN
  FOR change IN SELECT value FROM jsonb_array_elements(changes) LOOP
    position := position + 1;
    IF change->>'op' = 'delete' THEN
      EXECUTE format('DELETE FROM %I WHERE id = $1 AND version = $2', change->>'table')
        USING change->>'id', (change->>'version')::bigint;
    ELSE
      SELECT string_agg(format('%I', key), ', ') INTO names
        FROM jsonb_object_keys(change->'row') AS key;
      IF change->>'op' = 'insert' THEN
        EXECUTE format(
          'INSERT INTO %1$I (%2$s) SELECT %2$s FROM jsonb_populate_record(NULL::%1$I, $1)',
          change->>'table', names
        ) USING change->'row';
      ELSE
        EXECUTE format(
          'UPDATE %1$I SET (%2$s) = (SELECT %2$s FROM jsonb_populate_record(NULL::%1$I, $1)) '
          'WHERE id = $2 AND version = $3',
          change->>'table', names
        ) USING change->'row', change->>'id', (change->>'version')::bigint;
      END IF;
    END IF;
{_EACH_CHANGE_TOUCHED_ITS_ROW}"""  # noqa: S608
    ]


def shaped_batch_function() -> tuple[str, str]:
    """PostgreSQL's batch function written for this magiclink's record shapes: its name
    (``magiclink_apply_`` and a digest of every table's columns) and the statement creating it.

    It does what :data:`APPLY_BATCH_FUNCTION` does, with each table's statements written out
    instead of built with ``format()`` and run by ``EXECUTE``: PL/pgSQL plans a static statement
    once per connection and an ``EXECUTE`` on every call, which made a click's batch of three
    cost more than the same statements sent one by one in a transaction. Its name changes with
    any column, so a magiclink whose records differ never calls one written for other records
    (it falls back to :data:`APPLY_BATCH_FUNCTION`); ``migrate()`` creates it."""
    shapes = [(kind.table, list(field_types(kind))) for kind in kinds_by_table().values()]
    shape = ";".join(f"{table}:{','.join(columns)}" for table, columns in sorted(shapes))
    name = f"{APPLY_BATCH_FUNCTION}_{hashlib.sha256(shape.encode()).hexdigest()[:12]}"
    branches = "".join(_batch_branch(table, columns) for table, columns in sorted(shapes))
    # the f-string fills in table and column names of this module's own records, nothing a
    # caller gives; values arrive as the function's JSON argument
    return name, (
        f"""CREATE OR REPLACE FUNCTION {name}(changes jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  change jsonb;
  op text;
  position integer := 0;
  touched bigint;
BEGIN
  FOR change IN SELECT value FROM jsonb_array_elements(changes) LOOP
    position := position + 1;
    op := change->>'op';
    CASE change->>'table'{branches}
    END CASE;
{_EACH_CHANGE_TOUCHED_ITS_ROW}"""  # noqa: S608
    )


def _batch_branch(table: str, columns: list[str]) -> str:
    """The statements of :func:`shaped_batch_function` for one table."""
    every = ", ".join(columns)
    changed = ", ".join(name for name in columns if name != "id")
    row = f"jsonb_populate_record(NULL::{table}, change->'row')"
    where = "id = change->>'id' AND version = (change->>'version')::bigint"
    return f"""
    WHEN '{table}' THEN
      IF op = 'delete' THEN
        DELETE FROM {table} WHERE {where};
      ELSIF op = 'insert' THEN
        INSERT INTO {table} ({every}) SELECT {every} FROM {row};
      ELSE
        UPDATE {table} SET ({changed}) = (SELECT {changed} FROM {row}) WHERE {where};
      END IF;"""  # noqa: S608


def v4(dialect: Dialect) -> list[str]:
    """Version 4: a session given a new token keeps the one it had for a short grace
    (``sessions.previous_token_digest``, unique, until ``previous_token_until``): a double
    tap's first answer may reach the browser last."""
    types_ = _SQL_TYPES[dialect]
    add = "ADD COLUMN IF NOT EXISTS" if dialect == "postgres" else "ADD COLUMN"  # SQLite has none
    return [
        f"ALTER TABLE sessions {add} previous_token_digest {types_['text']}",
        f"ALTER TABLE sessions {add} previous_token_until {types_['time']}",
        "CREATE UNIQUE INDEX IF NOT EXISTS "
        f"{unique_index_name('sessions', 'previous_token_digest')} "
        "ON sessions (previous_token_digest) WHERE previous_token_digest IS NOT NULL",
    ]


def migrations(dialect: Dialect) -> list[tuple[int, list[str]]]:
    """Every schema step as (version, statements), oldest first. Append only. A step may be one
    dialect's only (version 3 is PostgreSQL's: SQLite goes from 2 to 4)."""
    steps = [
        (1, [*render_tables(V1_TABLES, dialect), counters_table(dialect)]),
        (2, v2(dialect)),
    ]
    if dialect == "postgres":
        steps.append((3, v3_postgres()))
    steps.append((4, v4(dialect)))
    return steps


def steps_after(dialect: Dialect, current: int) -> tuple[int, list[tuple[int, list[str]]]]:
    """The newest schema version, and the migration steps a database at ``current`` still needs.

    :raises RuntimeError: the database is newer than this magiclink knows.
    """
    steps = migrations(dialect)
    newest = steps[-1][0]
    if current > newest:
        raise RuntimeError(
            f"the database schema is at version {current}, newer than this magiclink "
            f"knows ({newest}): upgrade magiclink"
        )
    return newest, [(version, statements) for version, statements in steps if version > current]


async def purge_in_chunks(
    delete: Callable[[str, int], Awaitable[int]], limit: int, chunk_size: int
) -> int:
    """Purge up to ``limit`` rows, table by table, ``chunk_size`` at a time: ``delete(table, n)``
    deletes at most ``n`` rows past their ``purge_after`` and says how many it did."""
    removed = 0
    for kind in kinds_by_table().values():
        while removed < limit:
            chunk = min(chunk_size, limit - removed)
            deleted = await delete(kind.table, chunk)
            removed += deleted
            if deleted < chunk:
                break
    return removed


# -- records <-> rows --------------------------------------------------------------------------


def _column_type(annotation: object) -> ColumnType:
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _column_type(inner[0])
    if annotation is datetime:
        return "time"
    if annotation is int:
        return "int"
    if isinstance(annotation, type) and issubclass(annotation, Frozen):
        return "json"
    return "text"


def field_types(kind: type[Record]) -> dict[str, ColumnType]:
    """Each field of ``kind`` and how it is stored (worked out once per kind)."""
    known = _FIELD_TYPES.get(kind)
    if known is None:
        fields = kind.model_fields.items()
        known = _FIELD_TYPES[kind] = {name: _column_type(f.annotation) for name, f in fields}
    return known


# a dict, not functools.cache: mypy reads a frozen dataclass's class as unhashable
_FIELD_TYPES: dict[type[Record], dict[str, ColumnType]] = {}


def sqlite_time(value: datetime) -> str:
    """Fixed-width UTC text, so that comparing texts compares times."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Row(Protocol):
    """A row by column name: ``sqlite3.Row`` or ``asyncpg.Record``."""

    def __getitem__(self, key: str, /) -> Any:  # a column's type is the query's to say
        ...


def to_row(record: Record, dialect: Dialect, *, as_json: bool = False) -> dict[str, object]:
    """The column values of ``record``. ``as_json``: as JSON values, for PostgreSQL's
    ``jsonb_populate_record`` (times as ISO-8601 with their offset; JSON columns nested, since
    their text would be stored as a JSON string)."""
    row: dict[str, object] = {}
    for name, type_ in field_types(type(record)).items():
        value = getattr(record, name)
        if value is None:
            row[name] = None
        elif type_ == "json":
            dumped = value.model_dump(mode="json")
            row[name] = dumped if as_json else json.dumps(dumped, separators=(",", ":"))
        elif type_ == "time":
            if dialect == "sqlite":
                row[name] = sqlite_time(value)
            else:
                row[name] = _iso_time(value) if as_json else value
        elif isinstance(value, Enum):
            row[name] = value.value
        else:
            row[name] = value
    return row


def _iso_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored")
    return value.isoformat()


def out_of_date() -> StorageUnavailableError:
    """The error of a schema older than this magiclink's records (a column missing)."""
    return StorageUnavailableError(
        long_message="magiclink's tables are out of date: run `magiclink migrate`"
    )


def from_row(kind: type[R], row: Row) -> R:
    """The record of ``kind`` a row holds.

    :raises StorageUnavailableError: the row lacks a column (the schema is not migrated).
    """
    values: dict[str, object] = {}
    for name, type_ in field_types(kind).items():
        try:
            value = row[name]
        except (KeyError, IndexError):  # asyncpg.Record, sqlite3.Row
            raise out_of_date() from None
        if type_ == "json" and isinstance(value, str):
            value = json.loads(value)
        values[name] = value
    return kind.model_validate(values)
