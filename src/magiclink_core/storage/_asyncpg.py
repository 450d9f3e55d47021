"""The asyncpg driver, imported once for the PostgreSQL storage and notifier: how its errors read
(which mean "the database cannot be reached now"), and the part of its API the storage calls,
as protocols (asyncpg ships no type information)."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ..domain.errors import StorageUnavailableError
from ._extras import missing_extra

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("PostgresStorage", "asyncpg", "postgres") from exc

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
)


class PgRow(Protocol):
    """An ``asyncpg.Record``: a row, by column name (or position)."""

    def __getitem__(self, key: str | int, /) -> Any:  # a column's type is the query's to say
        ...


class PgTransaction(Protocol):
    """An ``asyncpg.transaction.Transaction``: started and ended by hand, or used as
    ``async with``."""

    async def start(self) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class PgConnection(Protocol):
    """An ``asyncpg.Connection``, as far as the storage uses one."""

    def transaction(self) -> PgTransaction: ...

    async def execute(self, query: str, *args: object) -> str:
        """Run a statement; returns its status tag (``"UPDATE 1"``)."""
        ...

    async def fetch(self, query: str, *args: object) -> list[PgRow]: ...

    async def fetchrow(self, query: str, *args: object) -> PgRow | None: ...

    async def fetchval(self, query: str, *args: object) -> Any:  # the query decides the type
        ...

    def is_closed(self) -> bool: ...

    def is_in_transaction(self) -> bool: ...

    def terminate(self) -> None: ...


class PgAcquire(AbstractAsyncContextManager[PgConnection], Protocol):
    """What ``asyncpg.Pool.acquire`` returns: used as ``async with``, or awaited for a
    connection to give back with ``Pool.release``."""

    def __await__(self) -> Generator[Any, None, PgConnection]: ...


class PgPool(Protocol):
    """An ``asyncpg.Pool``."""

    def acquire(self, *, timeout: float | None = None) -> PgAcquire: ...

    async def release(self, connection: PgConnection, *, timeout: float | None = None) -> None: ...

    async def close(self) -> None: ...


def unavailable(exc: BaseException) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"PostgreSQL: {type(exc).__name__}: {exc}")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


__all__ = [
    "PgConnection",
    "PgPool",
    "PgRow",
    "PgTransaction",
    "asyncpg",
    "is_unavailable",
    "unavailable",
]
