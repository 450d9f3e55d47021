"""Waiting for an attempt to change: woken by the Notifier, with bounded polling as a fallback.

A wake-up is only a hint to re-read storage; the storage read decides. So a lost or duplicated
notification costs at most one poll interval, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import anyio

from .ports import Notifier

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
