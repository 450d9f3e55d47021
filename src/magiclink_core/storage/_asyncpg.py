"""The asyncpg driver, imported once for the PostgreSQL storage and notifier, and how its errors
read: which mean "the database cannot be reached now"."""

from __future__ import annotations

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


def unavailable(exc: BaseException) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"PostgreSQL: {type(exc).__name__}: {exc}")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


__all__ = ["asyncpg", "is_unavailable", "unavailable"]
