"""Waiting for an attempt to change: woken by the Notifier, with bounded polling as a fallback.

A wake-up is only a hint to re-read storage; the storage read decides. So a lost or duplicated
notification costs at most one poll interval, never a wrong answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

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
        current = await load()  # read after subscribing: a change in between is not missed
        if done(current):
            return current
        with anyio.move_on_after(max(0.0, timeout.total_seconds())):
            while not (cancelled is not None and cancelled.is_set()):
                with anyio.move_on_after(poll_interval.total_seconds()):
                    async with anyio.create_task_group() as group:

                        async def woken() -> None:
                            await subscription.wait()
                            group.cancel_scope.cancel()

                        group.start_soon(woken)
                        if cancelled is not None:

                            async def stopped(event: anyio.Event = cancelled) -> None:
                                await event.wait()
                                group.cancel_scope.cancel()

                            group.start_soon(stopped)
                current = await load()
                if done(current):
                    return current
        return current


class _MemorySubscription:
    def __init__(self) -> None:
        self._event = anyio.Event()

    def fire(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


class LocalNotifier:
    """Wake-ups within one process: the default when the storage offers no shared notifier, and
    the local fan-out of the shared ones (they call :meth:`deliver` for each message heard)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[_MemorySubscription]] = defaultdict(set)

    async def publish(self, channel: str) -> None:
        self.deliver(channel)

    def deliver(self, channel: str) -> None:
        """Wake every local subscriber of ``channel`` (used by the shared notifiers too)."""
        for subscription in self._subscribers.get(channel, ()):
            subscription.fire()

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        subscription = _MemorySubscription()
        self._subscribers[channel].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[channel].discard(subscription)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    async def close(self) -> None:
        self._subscribers.clear()
