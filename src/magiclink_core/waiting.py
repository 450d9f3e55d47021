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
from typing import Generic, TypeVar

import anyio

from .ports import Notifier, Subscription

T = TypeVar("T")


async def wait_for_change(
    *,
    notifier: Notifier,
    channel: str,
    load: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: timedelta,
    poll_interval: timedelta,
    cancelled: anyio.Event | None = None,
) -> T:
    """Return the first loaded value for which ``done`` holds, or the last one read when
    ``timeout`` passes or ``cancelled`` is set. Cancelling the calling task cancels the wait."""
    async with notifier.subscribe(channel) as subscription:
        # read after subscribing: a change in between wakes the subscription, so is not missed
        reads = _Reads(notifier, subscription, load, done, poll_interval.total_seconds())
        current = reads.last = await load()
        if done(current) or (cancelled is not None and cancelled.is_set()):
            return current
        with anyio.move_on_after(max(0.0, timeout.total_seconds())):
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

    __slots__ = ("done", "last", "load", "notifier", "poll_seconds", "subscription")

    def __init__(
        self,
        notifier: Notifier,
        subscription: Subscription,
        load: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        poll_seconds: float,
    ) -> None:
        self.notifier = notifier
        self.subscription = subscription
        self.load = load
        self.done = done
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
            if self.done(self.last):
                return


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
