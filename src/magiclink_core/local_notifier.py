"""The in-process notifier: wake-ups within one process.

It is the default when the storage offers no shared notifier, and the local fan-out of the shared
ones (PostgreSQL, Redis): they hear one message per attempt change and call
:meth:`LocalNotifier.deliver` to wake this process's waiters. It is neither an adapter nor a
service module, so both may import it.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import AbstractAsyncContextManager
from typing import Self

import anyio
import anyio.lowlevel

from .ports import Subscription


class _Subscription:
    """One waiter on one channel, and its own context manager (no generator per subscribe).

    A wake-up that arrives while nobody waits is kept (``_pending``) until the next
    :meth:`wait`, so nothing published between subscribing and waiting is missed. The event
    exists only while someone waits: an idle subscription is a few slots.
    """

    __slots__ = ("_channel", "_event", "_owner", "_pending")

    def __init__(self, owner: LocalNotifier, channel: str) -> None:
        self._owner = owner
        self._channel = channel
        self._pending = False
        self._event: anyio.Event | None = None

    async def __aenter__(self) -> Subscription:
        self._owner._subscribers[self._channel].add(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        subscribers = self._owner._subscribers.get(self._channel)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self._owner._subscribers[self._channel]

    def fire(self) -> None:
        self._pending = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self._pending:
            await anyio.lowlevel.checkpoint()
        else:
            self._event = event = anyio.Event()
            try:
                await event.wait()
            finally:
                self._event = None
        self._pending = False


class LocalNotifier:
    """Wake-ups within one process: the default when the storage offers no shared notifier, and
    the local fan-out of the shared ones (they call :meth:`deliver` for each message heard).

    It needs no life cycle (entering and exiting do nothing) and is always :attr:`healthy`.
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[_Subscription]] = defaultdict(set)

    @property
    def healthy(self) -> bool:
        """Always True: nothing stands between a publish and this process's subscribers."""
        return True

    async def publish(self, channel: str) -> None:
        self.deliver(channel)

    def deliver(self, channel: str) -> None:
        """Wake every local subscriber of ``channel`` (used by the shared notifiers too)."""
        for subscription in self._subscribers.get(channel, ()):
            subscription.fire()

    def deliver_all(self) -> int:
        """Wake every local subscriber of every channel once; return how many there are. The
        shared notifiers call it when their health changes."""
        woken = 0
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.fire()
            woken += len(subscriptions)
        return woken

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return _Subscription(self, channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()


__all__ = ["LocalNotifier"]
