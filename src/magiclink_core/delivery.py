"""Handing emails to the mailer off the request path.

While ``MagicLinks`` runs (``async with links:``, which the ASGI middleware does for the app's
lifespan), a prepare stores its link, queues its email and answers at once: the time of the
answer does not depend on the mail server, nor on whether the address has an account. Workers
send queued emails, retrying a temporary failure with backoff until the link would have expired;
an email that cannot be sent by then (or is refused for good) has its link withdrawn and its
verification marked failed, so a waiting page says so instead of waiting forever. A withdrawal
that meets a storage outage is tried again with the same backoff until the storage is back, the
link has expired (it is dead then anyway), or the app stops (within ``shutdown_grace``); the
outage is logged once, and once more when it is over.

Not running (a script, a test), or with a mailer that declares ``instant = True`` (the memory
outbox and the console: they neither wait nor fail), an email is sent inline and a failure
reaches the caller as :class:`~magiclink_core.domain.errors.MailDeliveryError`.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from types import TracebackType

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .budgets import outage_logged
from .domain.errors import MailDeliveryError, StorageUnavailableError
from .domain.quick_init import quick_init
from .ports import Clock, EmailMessage, Mailer

logger = logging.getLogger("magiclink.delivery")

Outcome = Callable[[], Awaitable[None]]


@quick_init
@dataclass(frozen=True, slots=True)
class Parcel:
    """One queued email, what to do once it is handed over, and what to do if it never is."""

    message: EmailMessage
    deadline: datetime
    delivered: Outcome | None  # None: nothing to do once it is handed over
    undeliverable: Outcome


@dataclass(eq=False, repr=False)
class Delivery:
    """The queue and its workers.

    :param mailer: where emails go.
    :param clock: for deadlines.
    :param workers: emails sent at once.
    :param capacity: emails queued at most; beyond it a prepare sends inline (backpressure).
    :param first_retry: the pause before the first retry of a temporary failure (doubling, with
        jitter, up to ``max_retry``); also of a withdrawal that met a storage outage.
    :param shutdown_grace: at shutdown, how long queued emails (and withdrawals waiting for the
        storage) get before the rest are given up.
    """

    mailer: Mailer
    clock: Clock
    _: KW_ONLY
    workers: int = 4
    capacity: int = 1000
    first_retry: timedelta = timedelta(seconds=5)
    max_retry: timedelta = timedelta(minutes=1)
    shutdown_grace: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        self._inbox: MemoryObjectSendStream[Parcel] | None = None
        self._leftovers: MemoryObjectReceiveStream[Parcel] | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._pending = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._cut_off = anyio.Event()  # set once shutdown's grace is over: no more waiting

    @property
    def running(self) -> bool:
        return self._inbox is not None

    async def __aenter__(self) -> Delivery:
        send, receive = anyio.create_memory_object_stream[Parcel](self.capacity)
        self._cut_off = anyio.Event()
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        for _ in range(self.workers):
            self._group.start_soon(self._work, receive.clone())
        self._leftovers = receive  # what is still queued when the workers are stopped
        self._inbox = send
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop taking emails; give the queued ones ``shutdown_grace`` to go out, then withdraw
        the links of those still unsent (a page waiting on them says so)."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
        with anyio.move_on_after(self.shutdown_grace.total_seconds()):
            await self.idle()
        self._cut_off.set()  # a withdrawal waiting for the storage stops waiting
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(exc_type, exc, tb)
        leftovers, self._leftovers = self._leftovers, None
        if leftovers is not None:
            with anyio.CancelScope(shield=True):
                while True:
                    try:
                        parcel = leftovers.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                    await self._give_up(parcel, "the app stopped before it was sent")
            leftovers.close()

    async def idle(self) -> None:
        """Return once nothing is queued or being sent (for tests, and a graceful shutdown)."""
        await self._idle.wait()

    async def send(
        self,
        message: EmailMessage,
        *,
        deadline: datetime,
        delivered: Outcome | None,
        undeliverable: Outcome,
    ) -> None:
        """Send ``message``: queued while running, else inline.

        :raises MailDeliveryError: inline only, when the mailer did not take it (``undeliverable``
            has run by then).
        """
        parcel = Parcel(message, deadline, delivered, undeliverable)
        inbox = self._inbox
        if inbox is not None and not getattr(self.mailer, "instant", False):
            try:
                inbox.send_nowait(parcel)
            except anyio.WouldBlock:
                logger.warning("the mail queue is full: sending inline")
            else:
                self._count(+1)
                return
        await self._inline(parcel)

    async def _inline(self, parcel: Parcel) -> None:
        try:
            await self.mailer.send(parcel.message)
        except BaseException as exc:
            # no link may exist that was never sent: take it back, also when the send was
            # cancelled (a client gone, a caller's timeout)
            with anyio.CancelScope(shield=True):
                await parcel.undeliverable()
            if not isinstance(exc, Exception):
                raise
            logger.warning("sending a %s email failed: %s", parcel.message.kind, type(exc).__name__)
            if isinstance(exc, MailDeliveryError):
                raise
            raise MailDeliveryError() from exc
        if parcel.delivered is not None:
            await parcel.delivered()

    async def _work(self, inbox: MemoryObjectReceiveStream[Parcel]) -> None:
        async with inbox:
            async for parcel in inbox:
                try:
                    await self._deliver(parcel)
                except Exception:  # a bug in an outcome must not stop the worker
                    logger.exception("delivering a %s email failed", parcel.message.kind)
                finally:
                    self._count(-1)

    async def _deliver(self, parcel: Parcel) -> None:
        backoff = _Backoff(self.first_retry, self.max_retry)
        try:
            while True:
                try:
                    await self.mailer.send(parcel.message)
                except Exception as exc:
                    permanent = isinstance(exc, MailDeliveryError) and exc.permanent
                    left = (parcel.deadline - self.clock.now()).total_seconds()
                    if permanent or left <= backoff.pause:
                        reason = "refused" if permanent else "still failing at its expiry"
                        await self._give_up(parcel, reason)
                        return
                    logger.info("a %s email will be tried again: %s", parcel.message.kind, exc)
                    await anyio.sleep(backoff.next())
                else:
                    if parcel.delivered is not None:
                        await parcel.delivered()
                    return
        except anyio.get_cancelled_exc_class():
            await self._give_up(parcel, "the app stopped while it was being sent")
            raise

    async def _give_up(self, parcel: Parcel, reason: str) -> None:
        logger.warning(
            "a %s email could not be sent (%s); its link is withdrawn", parcel.message.kind, reason
        )
        with anyio.CancelScope(shield=True):
            await self._withdraw(parcel)

    async def _withdraw(self, parcel: Parcel) -> None:
        """Run ``parcel.undeliverable``; while the storage is unavailable, again with backoff,
        until the parcel's deadline or the end of the shutdown grace (then once more)."""
        kind = parcel.message.kind
        backoff = _Backoff(self.first_retry, self.max_retry)
        waiting = False
        while True:
            try:
                with outage_logged() if waiting else contextlib.nullcontext():
                    await parcel.undeliverable()
            except StorageUnavailableError:
                left = (parcel.deadline - self.clock.now()).total_seconds()
                if left <= 0 or self._cut_off.is_set():
                    why = "its link has expired" if left <= 0 else "the app stopped"
                    logger.error(
                        "an unsent %s link could not be withdrawn: the storage is unavailable "
                        "and %s",
                        kind,
                        why,
                    )
                    return
                if not waiting:
                    logger.warning(
                        "the storage is unavailable: withdrawing an unsent %s link waits for it",
                        kind,
                    )
                    waiting = True
                with anyio.move_on_after(min(backoff.next(), left)):
                    await self._cut_off.wait()
            except Exception:
                logger.exception("withdrawing an unsent %s link failed", kind)
                return
            else:
                if waiting:
                    logger.info("the storage is back: an unsent %s link is withdrawn", kind)
                return

    def _count(self, change: int) -> None:
        self._pending += change
        if self._pending == 0:
            self._idle.set()
        elif self._idle.is_set():
            self._idle = anyio.Event()


class _Backoff:
    """Pauses between tries (of a send, or of a withdrawal through a storage outage): the first,
    doubling up to the most, each taken with jitter (half to all of it)."""

    def __init__(self, first: timedelta, most: timedelta) -> None:
        self.pause = first.total_seconds()  # the next pause, before its jitter
        self._most = most.total_seconds()

    def next(self) -> float:
        """The pause to take now; the one after it is twice as long (up to the most)."""
        taken = self.pause * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        self.pause = min(self.pause * 2, self._most)
        return taken


__all__ = ["Delivery", "Parcel"]
