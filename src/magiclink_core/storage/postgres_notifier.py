"""PostgreSQL wake-ups across app instances (``magiclink[postgres]``): ``LISTEN``/``NOTIFY``."""

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
from ._asyncpg import asyncpg, is_unavailable, unavailable

logger = logging.getLogger("magiclink.storage")


class PostgresNotifier:
    """Wake-ups across app instances through PostgreSQL ``LISTEN``/``NOTIFY``.

    Every instance listens on one channel (``channel``) on one dedicated connection; a publish
    sends the waiters' channel name as the payload, and each instance wakes its own subscribers
    (:meth:`LocalNotifier.deliver`). If the connection drops, waiters fall back to polling
    (see ``waiting.py``) and the notifier reconnects on the next subscribe or publish.

    :param dsn: the database, as for :class:`PostgresStorage`; or
    :param pool: a pool to borrow one connection from, for as long as the notifier is open.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: Any = None,
        channel: str = "magiclink",
        connect_timeout: float = 3.0,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ValueError("give PostgresNotifier a dsn or a pool, not both")
        self.dsn = dsn
        self.channel = channel
        self.connect_timeout = connect_timeout
        self._pool = pool
        self._server_settings = server_settings or {"application_name": "magiclink"}
        self._local = LocalNotifier()
        self._connection: Any = None
        self._connect_lock = asyncio.Lock()
        self._publish_lock = asyncio.Lock()
        self._closed = False

    async def _ensure(self) -> Any:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        async with self._connect_lock:
            if self._connection is not None and not self._connection.is_closed():
                return self._connection
            if self._closed:
                raise StorageUnavailableError(long_message="the notifier is closed")
            stale, self._connection = self._connection, None
            if stale is not None and self._pool is not None:
                with contextlib.suppress(Exception):  # give a dead borrowed connection back
                    await self._pool.release(stale)
            try:
                connection = await self._open()
                await connection.add_listener(self.channel, self._on_notify)
            except BaseException as exc:
                if is_unavailable(exc):
                    raise unavailable(exc) from exc
                raise
            connection.add_termination_listener(self._on_terminated)
            self._connection = connection
            return connection

    async def _open(self) -> Any:
        if self._pool is not None:
            return await self._pool.acquire(timeout=self.connect_timeout)
        return await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout, server_settings=self._server_settings
        )

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._local.deliver(payload)

    def _on_terminated(self, connection: Any) -> None:
        if self._connection is connection:
            self._connection = None
            logger.warning("the LISTEN connection dropped; waiters poll until it is back")

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` here and on every other instance."""
        self._local.deliver(channel)
        connection = await self._ensure()
        try:
            async with self._publish_lock:
                await connection.execute("SELECT pg_notify($1, $2)", self.channel, channel)
        except BaseException as exc:
            if is_unavailable(exc):
                raise unavailable(exc) from exc
            raise

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Subscribe to ``channel``. The LISTEN is in place when this enters; if the database
        cannot be reached the subscription still works for wake-ups from this process."""
        try:
            await self._ensure()
        except StorageUnavailableError:
            logger.warning("cannot LISTEN now; waiters on %s poll instead", channel)
        async with self._local.subscribe(channel) as subscription:
            yield subscription

    async def close(self) -> None:
        """Stop listening and release the connection."""
        self._closed = True
        connection, self._connection = self._connection, None
        await self._local.close()
        if connection is None or connection.is_closed():
            return
        try:
            await connection.remove_listener(self.channel, self._on_notify)
        except BaseException as exc:
            if not is_unavailable(exc):
                raise
        if self._pool is not None:
            await self._pool.release(connection)
        else:
            await connection.close(timeout=self.connect_timeout)


__all__ = ["PostgresNotifier"]
