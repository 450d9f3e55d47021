"""PostgreSQL wake-ups across app instances (``magiclink[postgres]``): ``LISTEN``/``NOTIFY``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..shared_notifier import Backoff, SharedNotifier
from ._asyncpg import asyncpg, is_unavailable, unavailable


class PostgresNotifier(SharedNotifier):
    """Wake-ups across app instances through PostgreSQL ``LISTEN``/``NOTIFY``.

    Every instance listens on one channel (``channel``) on one dedicated connection; a publish
    sends the waiters' channel name as the payload, and each instance wakes its own subscribers.
    ``async with notifier:`` (or ``async with links:``) runs the listener, supervised: a lost
    connection is reopened with backoff, waiters poll storage meanwhile and re-read once when it
    is back (see :class:`~magiclink_core.shared_notifier.SharedNotifier`).

    A publish goes out on the listening connection; while there is none (an outage, or a
    notifier never entered) through ``notify`` if given (a storage's notifier sends it on a
    pooled connection of that storage), else on a connection of its own for that one statement.

    :param dsn: the database, as for :class:`PostgresStorage`; or
    :param pool: a pool to borrow one connection from, for as long as the listener runs.
    :param keepalive: seconds of silence after which the listening connection is checked with a
        ``SELECT 1``, which must be answered within ``connect_timeout``.
    :param backoff: the delays between reconnection attempts.
    :param notify: sends a ``NOTIFY`` (the channel, the payload) while there is no listening
        connection; it raises :class:`StorageUnavailableError` when the database cannot be
        reached.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: Any = None,
        channel: str = "magiclink",
        connect_timeout: float = 3.0,
        server_settings: dict[str, str] | None = None,
        keepalive: float = 30.0,
        backoff: Backoff | None = None,
        notify: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ValueError("give PostgresNotifier a dsn or a pool, not both")
        super().__init__(backoff=backoff)
        self.dsn = dsn
        self.channel = channel
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._pool = pool
        self._notify = notify
        self._server_settings = server_settings or {"application_name": "magiclink"}
        self._connection: Any = None  # the listening connection, while it is up
        self._in_use = anyio.Lock()  # one statement at a time on the listening connection

    def __repr__(self) -> str:
        return f"PostgresNotifier(channel={self.channel!r})"

    async def _listen(self, ready: Callable[[], None]) -> None:
        lost = anyio.Event()

        def on_terminated(_connection: Any) -> None:
            lost.set()

        connection = await self._open()
        try:
            connection.add_termination_listener(on_terminated)
            with anyio.fail_after(self.connect_timeout):
                await connection.add_listener(self.channel, self._on_notify)
            self._connection = connection
            ready()
            while not lost.is_set():
                with anyio.move_on_after(self.keepalive):
                    await lost.wait()
                if not lost.is_set():  # silent for a while: is anyone there?
                    async with self._in_use:
                        await connection.execute("SELECT 1", timeout=self.connect_timeout)
        finally:
            self._connection = None
            with anyio.move_on_after(self.connect_timeout, shield=True):
                async with self._in_use:  # a publish may still be using it
                    connection.remove_termination_listener(on_terminated)
                    await self._release(connection)

    async def _open(self) -> Any:
        if self._pool is not None:
            return await self._pool.acquire(timeout=self.connect_timeout)
        return await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout, server_settings=self._server_settings
        )

    async def _release(self, connection: Any) -> None:
        try:
            if not connection.is_closed():
                await connection.remove_listener(self.channel, self._on_notify)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
        finally:
            if self._pool is not None:
                await self._pool.release(connection)  # a dead one too: the pool replaces it
            else:
                await connection.close(timeout=self.connect_timeout)

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._deliver(payload)

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` here and on every other instance.

        :raises StorageUnavailableError: the database cannot be reached.
        """
        self._deliver(channel)
        connection = self._connection
        if connection is not None:
            try:
                async with self._in_use:
                    await connection.execute(
                        "SELECT pg_notify($1, $2)",
                        self.channel,
                        channel,
                        timeout=self.connect_timeout,
                    )
                return
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # the listening connection just went: send it without it
        await self._publish_alone(channel)

    async def _publish_alone(self, channel: str) -> None:
        if self._notify is not None:
            await self._notify(self.channel, channel)
            return
        try:
            if self._pool is not None:
                await self._pool.execute(
                    "SELECT pg_notify($1, $2)", self.channel, channel, timeout=self.connect_timeout
                )
                return
            connection = await self._open()
            try:
                await connection.execute(
                    "SELECT pg_notify($1, $2)", self.channel, channel, timeout=self.connect_timeout
                )
            finally:
                await connection.close(timeout=self.connect_timeout)
        except Exception as exc:
            if is_unavailable(exc):
                raise unavailable(exc) from exc
            raise


__all__ = ["PostgresNotifier"]
