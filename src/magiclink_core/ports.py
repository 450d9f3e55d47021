"""The ports: what the service needs from the world, as ``typing.Protocol`` classes.

Storage is a record store with one write operation, :meth:`Storage.apply`, which writes a batch of
changes all-or-nothing and only if every record is still at the version the change expects. That
single compare-and-set is what makes a link single-use, an attempt complete once and an email
address claimed by one user, in every adapter alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, Self, TypeVar, runtime_checkable

# the changes ``Storage.apply`` writes are plain data of the domain's, re-exported here
from .domain.changes import Change as Change
from .domain.changes import Delete as Delete
from .domain.changes import Insert as Insert
from .domain.changes import Update as Update
from .domain.models import Record
from .domain.quick_init import quick_init

R = TypeVar("R", bound=Record)


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
        has settled its outcome, all or nothing, by the time it returns. Only a backend that
        does not answer a write already sent (past the caller's deadline, the request's
        ``Settings.storage_timeout``, and a short grace) leaves it unknown: the call then fails
        with :class:`~magiclink_core.domain.errors.StorageUnavailableError`.
        """
        ...

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        """Atomically add ``amount`` (one, or zero to read) to the counter ``key`` and return
        (count, when it resets).

        A counter lives for ``window`` from its first increment, then starts again from zero; the
        primitive of rate limits shared across instances. A budget is checked with ``amount=0``
        before the work it limits, and spent with the default afterwards when the work counts.
        A counter found past its window reads as zero. ``amount=0`` should be a plain read (it
        is on the path of every email sent); the shipped adapters create, restart and lock
        nothing for it.
        """
        ...

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` records whose ``purge_after`` has passed; return how many."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Subscription(Protocol):
    """One waiter's interest in one channel, from :meth:`Notifier.subscribe`."""

    async def wait(self) -> None:
        """Return once something may have changed on the channel since the last return: a
        publish on it, or the notifier's :attr:`~Notifier.healthy` changing (a message may have
        been missed). A wake-up is a hint to re-read storage, never the news itself."""
        ...


class Notifier(Protocol):
    """Wakes waiters when an attempt changes, across every instance sharing the backend.

    Every notifier must pass ``magiclink_core.testing.NotifierContract``. The life cycle is that
    of an async context manager: entering starts what listens to the backend (a shared notifier
    holds one connection), exiting stops it and releases everything; ``MagicLinks`` enters its
    notifier when it is itself entered (``async with links:``). :meth:`subscribe` and
    :meth:`publish` work whether or not it was entered.

    While :attr:`healthy` is False waiters poll storage every ``Settings.wait_poll_interval``;
    while it is True they do nothing until woken. A notifier wakes every subscriber whenever
    :attr:`healthy` changes, so a waiter re-reads once when its notifier reconnects (a message
    lost during the outage costs that one read) and starts polling when it goes down.
    """

    @property
    def healthy(self) -> bool:
        """Whether a publish on any instance reaches this notifier's subscribers now. Always
        True for an in-process notifier; for a shared one, whether its listener is up."""
        ...

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` here and on every other instance."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``channel`` for the block's duration; no publish made after entering
        is missed."""
        ...

    async def __aenter__(self) -> Self:
        """Start listening (a shared notifier connects here, and retries on its own)."""
        ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop listening and release connections."""
        ...

    async def close(self) -> None:
        """Release connections; for a notifier never entered. Idempotent."""
        ...


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
    """A storage adapter whose backend can also carry wake-ups (PostgreSQL, Redis, a SQLite
    file)."""

    def notifier(self) -> Notifier: ...


@quick_init
@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One email, ready to send: both bodies rendered, no header yet built."""

    to: str
    subject: str
    text: str
    html: str
    # a tag saying what the email is for ("sign_in", "sign_up", ...), for tests and logs
    kind: str = ""
    # the code the email carries, if any (it is in the bodies too): for development mailboxes
    email_code: str | None = None


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

    # ``datetime.now`` bound to UTC, called without a Python frame of its own: the service
    # reads the clock several times per link click and per signed-in request
    now: Callable[[], datetime] = staticmethod(functools.partial(datetime.now, UTC))
    """The current time, timezone-aware UTC."""


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
