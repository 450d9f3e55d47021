"""The ports: what the service needs from the world, as ``typing.Protocol`` classes.

Storage is a record store with one write operation, :meth:`Storage.apply`, which writes a batch of
changes all-or-nothing and only if every record is still at the version the change expects. That
single compare-and-set is what makes a link single-use, an attempt complete once and an email
address claimed by one user, in every adapter alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar, runtime_checkable

from .domain.models import Record

R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class Insert:
    """Create ``record``; fails if its id, or a value of one of its ``unique_fields``, is taken."""

    record: Record


@dataclass(frozen=True, slots=True)
class Update:
    """Replace the stored record of the same id, which must be at ``record.version - 1``.

    Unique fields are re-checked against other records.
    """

    record: Record


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the record, which must be at ``version``."""

    kind: type[Record]
    id: str
    version: int


Change = Insert | Update | Delete


class WriteConflict(Exception):
    """A change's condition failed: a version moved, an id or unique value was taken, a record
    was gone. Nothing of the batch was written. ``unique_field`` names a unique clash."""

    def __init__(self, message: str, *, unique_field: str | None = None) -> None:
        super().__init__(message)
        self.unique_field = unique_field


class Storage(Protocol):
    """Where records live. Every adapter must pass ``magiclink_core.testing.StorageContract``.

    Adapters raise :class:`~magiclink_core.domain.errors.StorageUnavailableError` when the backend
    cannot be reached, so callers fail fast with a clear error.
    """

    async def get(self, kind: type[R], id: str) -> R | None:
        """The record of ``kind`` with ``id``, or None."""
        ...

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        """The record whose unique ``field`` (one of ``kind.unique_fields``) equals ``value``."""
        ...

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        """Records whose ``field`` (one of ``kind.list_fields``) equals ``value``, oldest first."""
        ...

    async def apply(self, changes: Sequence[Change]) -> None:
        """Write all ``changes`` atomically, or none and raise :class:`WriteConflict`.

        Within one batch, a unique value must be released (by an earlier change) before it is
        claimed: SQL backends check uniqueness statement by statement. A call that is cancelled
        has settled its outcome, all or nothing, by the time it returns.
        """
        ...

    async def increment(
        self, key: str, *, window: timedelta, now: datetime
    ) -> tuple[int, datetime]:
        """Atomically add one to the counter ``key`` and return (count, when it resets).

        A counter starts at 1 and lives for ``window`` from its first increment; the primitive of
        rate limits shared across instances.
        """
        ...

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` records whose ``purge_after`` has passed; return how many."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Subscription(Protocol):
    async def wait(self) -> None:
        """Return when something was published on the channel since the last return."""
        ...


class Notifier(Protocol):
    """Wakes waiters when an attempt changes, across every instance sharing the backend."""

    async def publish(self, channel: str) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Migratable(Protocol):
    """A storage adapter with a schema to create or upgrade (SQLite, PostgreSQL; Redis, which
    needs none, answers 0). ``magiclink migrate`` migrates any storage that is one."""

    async def migrate(self) -> int:
        """Create or upgrade the schema and return its version; idempotent, safe to run from
        several processes at once."""
        ...


@runtime_checkable
class HasNotifier(Protocol):
    """A storage adapter whose backend can also carry wake-ups (PostgreSQL, Redis)."""

    def notifier(self) -> Notifier: ...


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One email, ready to send: both bodies rendered, no header yet built."""

    to: str
    subject: str
    text: str
    html: str
    # a tag saying what the email is for ("sign_in", "sign_up", ...), for tests and logs
    kind: str = ""


class Mailer(Protocol):
    """Sends email. Raises :class:`~magiclink_core.domain.errors.MailDeliveryError` when the
    message was not accepted; a return means the message was handed over."""

    async def send(self, message: EmailMessage) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


__all__: Sequence[str] = (
    "Change",
    "Clock",
    "Delete",
    "EmailMessage",
    "HasNotifier",
    "Insert",
    "Mailer",
    "Migratable",
    "Notifier",
    "Storage",
    "Subscription",
    "SystemClock",
    "Update",
    "WriteConflict",
)
