"""Waiting for an attempt to change: woken by the Notifier; polling only while it is down.

A waiter subscribes, reads once, and then does nothing until its subscription is woken: no
storage read, no timer but the wait's own deadline, no connection held. A wake-up is only a hint
to re-read storage; the storage read decides. While the notifier is not :attr:`healthy
<magiclink_core.ports.Notifier.healthy>` (its listener lost its connection, or was never
started) the waiter also re-reads every ``poll_interval``. The notifier wakes every subscriber
when its health changes, so a waiter starts polling when it goes down and re-reads once when it
is back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Generic, Protocol, TypeVar

import anyio

from .ports import Notifier, Subscription

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Watch(Protocol[T_contra]):
    """What one wait waits for, decided by the first value it reads."""

    def begin(self, first: T_contra) -> float | None:
        """Seconds to wait at most, given the value read as the wait begins; None: that value
        is the answer (nothing to wait for)."""
        ...

    def done(self, current: T_contra) -> bool:
        """Whether a value read later (or the first one) ends the wait."""
        ...


async def wait_for_change(
    *,
    notifier: Notifier,
    channel: str,
    load: Callable[[], Awaitable[T]],
    watch: Watch[T],
    poll_interval: timedelta,
    cancelled: anyio.Event | None = None,
) -> T:
    """Read once, after subscribing to ``channel``, and wait as ``watch`` says: return the first
    value read for which ``watch.done`` holds, or the last one read when the time is up or
    ``cancelled`` is set. Cancelling the calling task cancels the wait."""
    async with notifier.subscribe(channel) as subscription:
        # the one read before waiting, after subscribing: a change in between wakes the
        # subscription, so is not missed
        reads = _Reads(notifier, subscription, load, watch, poll_interval.total_seconds())
        first = reads.last = await load()
        seconds = watch.begin(first)
        if seconds is None or watch.done(first) or (cancelled is not None and cancelled.is_set()):
            return first
        del first  # the wait keeps one value: the last one read
        with anyio.move_on_after(max(0.0, seconds)):
            if cancelled is None:
                await reads.until_done()
            else:
                async with anyio.create_task_group() as group:  # one per wait, not per round
                    group.start_soon(_cancel_when_set, cancelled, group.cancel_scope)
                    await reads.until_done()
                    group.cancel_scope.cancel()
        return reads.last


class _Reads(Generic[T]):
    """The loop of one wait, keeping the last value read for when the wait is cut short."""

    __slots__ = ("last", "load", "notifier", "poll_seconds", "subscription", "watch")

    def __init__(
        self,
        notifier: Notifier,
        subscription: Subscription,
        load: Callable[[], Awaitable[T]],
        watch: Watch[T],
        poll_seconds: float,
    ) -> None:
        self.notifier = notifier
        self.subscription = subscription
        self.load = load
        self.watch = watch
        self.poll_seconds = poll_seconds
        self.last: T

    async def until_done(self) -> None:
        while True:
            if self.notifier.healthy:
                await self.subscription.wait()
            else:
                with anyio.move_on_after(self.poll_seconds):
                    await self.subscription.wait()
            self.last = await self.load()
            if self.watch.done(self.last):
                return


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
