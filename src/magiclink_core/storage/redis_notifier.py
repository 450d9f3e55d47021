"""Redis wake-ups across app instances (``magiclink[redis]``): pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..domain.errors import StorageUnavailableError
from ..local_notifier import LocalNotifier
from ..ports import Subscription
from ._redis_client import UNAVAILABLE, RedisError, make_client, unavailable

logger = logging.getLogger("magiclink.storage")


class RedisNotifier:
    """Wake-ups across app instances through Redis pub/sub.

    Each notifier subscribes once to ``channel`` (a background task, resubscribing after a
    dropped connection); a publish sends the waiters' channel as the message, and each instance
    wakes its own subscribers (:meth:`LocalNotifier.deliver`). While the subscription is down,
    waiters fall back to polling.

    :param url: a Redis URL; or
    :param client: a ``redis.asyncio.Redis`` client with ``decode_responses=True`` to share.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        channel: str = "magiclink:notify",
        connect_timeout: float = 3.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("give RedisNotifier a url or a client, not both")
        self.channel = channel
        self.connect_timeout = connect_timeout
        self._owns_client = client is None
        self._client: Any = client or make_client(
            url or "", connect_timeout=connect_timeout, command_timeout=connect_timeout
        )
        self._local = LocalNotifier()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self._ready.set()
                        backoff = 0.05
                    elif message["type"] == "message":
                        self._local.deliver(message["data"])
            except (RedisError, OSError) as exc:
                if not self._closed:
                    logger.warning("Redis pub/sub dropped (%s); waiters poll meanwhile", exc)
            finally:
                self._ready.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _ensure_listening(self) -> None:
        if self._closed:
            raise StorageUnavailableError(long_message="the notifier is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self.connect_timeout)

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` here and on every other instance."""
        self._local.deliver(channel)
        try:
            await self._client.publish(self.channel, channel)
        except UNAVAILABLE as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Subscribe to ``channel``; the Redis subscription is in place when this enters (or,
        if Redis cannot be reached within ``connect_timeout``, waiters poll)."""
        await self._ensure_listening()
        async with self._local.subscribe(channel) as subscription:
            yield subscription

    async def close(self) -> None:
        """Stop listening (and close the client if this notifier made it)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._local.close()
        if self._owns_client:
            await self._client.aclose()


__all__ = ["RedisNotifier"]
