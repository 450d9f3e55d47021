"""Redis wake-ups across app instances (``magiclink[redis]``): pub/sub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from ..shared_notifier import Backoff, SharedNotifier
from ._redis_client import UNAVAILABLE, make_client, unavailable


class RedisNotifier(SharedNotifier):
    """Wake-ups across app instances through Redis pub/sub.

    Each notifier subscribes once to ``channel`` (on a connection of its client's pool); a
    publish sends the waiters' channel as the message, and each instance wakes its own
    subscribers. ``async with notifier:`` (or ``async with links:``) runs the subscription,
    supervised: a lost connection is reopened with backoff, waiters poll storage meanwhile and
    re-read once when it is back (see :class:`~magiclink_core.shared_notifier.SharedNotifier`).

    :param url: a Redis URL; or
    :param client: a ``redis.asyncio.Redis`` client with ``decode_responses=True`` to share.
    :param keepalive: seconds of silence after which the subscription is checked with a PING.
    :param backoff: the delays between reconnection attempts.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        channel: str = "magiclink:notify",
        connect_timeout: float = 3.0,
        keepalive: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("give RedisNotifier a url or a client, not both")
        super().__init__(backoff=backoff)
        self.channel = channel
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._owns_client = client is None
        self._client: Any = client or make_client(
            url or "", connect_timeout=connect_timeout, command_timeout=connect_timeout
        )

    def __repr__(self) -> str:
        return f"RedisNotifier(channel={self.channel!r})"

    async def _listen(self, ready: Callable[[], None]) -> None:
        pubsub = self._client.pubsub()
        try:
            with anyio.fail_after(self.connect_timeout):
                await pubsub.subscribe(self.channel)
                confirmed = None
                while confirmed is None or confirmed["type"] != "subscribe":
                    confirmed = await pubsub.get_message(timeout=self.connect_timeout)
            ready()
            await self._hear(pubsub)
        finally:
            with anyio.move_on_after(self.connect_timeout, shield=True):
                await pubsub.aclose()

    async def _hear(self, pubsub: Any) -> None:
        """Deliver each message until the connection fails. Reads wait at most ``keepalive``
        (a bounded read works alike in every redis-py version, whatever the client's socket
        timeout); a silent one is followed by a PING, which must be answered in time."""
        pinged = False
        while True:
            message = await pubsub.get_message(
                timeout=self.connect_timeout if pinged else self.keepalive
            )
            if message is None:
                if pinged:
                    raise TimeoutError(f"no answer to PING within {self.connect_timeout:g} s")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] == "message":
                data = message["data"]
                self._deliver(data.decode() if isinstance(data, bytes) else data)
            elif message["type"] == "subscribe":
                # redis-py reconnected by itself and subscribed again: something may have
                # been published in between
                self._missed("the subscription was renewed after a dropped connection")

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` here and on every other instance.

        :raises StorageUnavailableError: Redis cannot be reached.
        """
        self._deliver(channel)
        try:
            await self._client.publish(self.channel, channel)
        except UNAVAILABLE as exc:
            raise unavailable(exc) from exc

    async def close(self) -> None:
        """Stop listening (and close the client if this notifier made it)."""
        first = not self._closed
        await super().close()
        if self._owns_client and first:
            await self._client.aclose()


__all__ = ["RedisNotifier"]
