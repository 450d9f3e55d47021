"""The in-process notifier: wake-ups within one process.

It is the default when the storage offers no shared notifier, and the local fan-out of the shared
ones (PostgreSQL, Redis): they hear one message per attempt change and call
:meth:`LocalNotifier.deliver` to wake this process's waiters. It is neither an adapter nor a
service module, so both may import it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from .ports import Subscription


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
