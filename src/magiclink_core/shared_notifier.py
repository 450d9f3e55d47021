"""The supervised listener of the notifiers shared across app instances (PostgreSQL, Redis, and
the processes sharing a SQLite file).

A shared notifier holds one connection that listens to its backend, and fans each message out to
this process's waiters through a :class:`LocalNotifier`. This module owns what both have in
common, so each backend writes only how to listen:

- the life cycle: ``async with notifier:`` runs the listener in an anyio task group until the
  block ends; entering returns once the first connection attempt is over (listening, or failed
  and retrying), so a healthy backend means push wake-ups from the first request on;
- supervision: a lost or failed connection is retried for ever, after an exponential, capped,
  jittered delay (:class:`Backoff`), and logged once per outage (one warning when it is lost, one
  info when it is back), never once per retry;
- health: :attr:`SharedNotifier.healthy` says whether the listener is up; every local subscriber
  is woken when it changes, so waiters poll storage while it is down and re-read once when it is
  back (a message missed meanwhile costs that one read).

A notifier that is never entered still publishes and wakes this process's own waiters, but hears
nothing from other instances: it reports itself down, so waiters poll, and says so in one warning
naming the fix (``async with links:`` in the app's lifespan).

Like :mod:`.local_notifier` it is neither an adapter nor a service module, so both may import it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Self

import anyio
from anyio.abc import TaskStatus

from .local_notifier import LocalNotifier
from .ports import Subscription

logger = logging.getLogger("magiclink.storage")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: doubling from ``first`` up to ``cap`` seconds,
    each drawn at random between half the delay and the delay ("equal jitter"), so the instances
    that lost one server together do not all knock on it at the same instant."""

    first: float = 0.1
    cap: float = 10.0

    def delay(self, failures: int) -> float:
        """The delay before the attempt that follows ``failures`` failed ones in a row."""
        ceiling = min(self.cap, self.first * 2 ** min(failures, 32))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


class SharedNotifier:
    """The base of the shared notifiers: life cycle, supervision, health, local fan-out.

    A subclass implements :meth:`_listen` and :meth:`publish` (which calls :meth:`_deliver` for
    this process first, then sends to the backend), and extends :meth:`close` to release what
    it owns.
    """

    def __init__(self, *, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._local = LocalNotifier()
        self._healthy = False
        self._running: AsyncExitStack | None = None
        self._listener: anyio.CancelScope | None = None
        self._closed = False
        self._told_not_running = False
        self._down_since: float | None = None  # when the current outage began (None: up)

    @property
    def healthy(self) -> bool:
        """Whether the listener is up, so a publish on any instance wakes this one's waiters."""
        return self._healthy

    # -- what a backend provides ---------------------------------------------------------------

    async def _listen(self, ready: Callable[[], None]) -> None:
        """Connect and listen, call ``ready()`` once every message published from then on will
        be heard (passing each to :meth:`_deliver`), and return or raise when the connection is
        lost. Release the connection before leaving, even when cancelled; bound every step
        before ``ready()`` by a timeout, so entering the notifier cannot hang."""
        raise NotImplementedError

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` here and on every other instance."""
        raise NotImplementedError

    def _deliver(self, channel: str) -> None:
        self._local.deliver(channel)

    # -- for the waiters -------------------------------------------------------------------------

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``channel`` for the block's duration. Works whether or not the notifier
        runs; while it does not, only this process's publishes wake the subscription."""
        if self._running is None and not self._closed and not self._told_not_running:
            self._told_not_running = True
            logger.warning(
                "%r is not running, so waiters poll storage every wait_poll_interval instead "
                "of being woken from other instances: enter `async with links:` (or the "
                "notifier itself) in your app's lifespan",
                self,
            )
        return self._local.subscribe(channel)

    # -- life cycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the supervised listener; return once its first connection attempt is over."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._running is not None:
            raise RuntimeError(f"{self!r} is running already")
        stack = AsyncExitStack()
        group = await stack.enter_async_context(anyio.create_task_group())
        # the listener's own scope: cancelling it never cancels the task that entered
        self._listener = listener = anyio.CancelScope()
        try:
            await group.start(self._supervise, listener)
        except BaseException:
            listener.cancel()
            await stack.aclose()
            raise
        self._running = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the listener, wait for it to release its connection, then :meth:`close`."""
        running, self._running = self._running, None
        if self._listener is not None:
            self._listener.cancel()
        if running is not None:
            await running.aclose()
        await self.close()

    async def close(self) -> None:
        """Stop listening and forget the subscribers. Idempotent. Inside ``async with`` the
        listener's connection is released when the block ends."""
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
        if self._healthy:
            self._healthy = False
            self._local.deliver_all()  # whoever still waits falls back to polling
        await self._local.close()

    # -- supervision -----------------------------------------------------------------------------

    async def _supervise(
        self,
        listener: anyio.CancelScope,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        failures = 0
        started = False

        def ready() -> None:
            nonlocal failures, started
            failures = 0
            self._up()
            if not started:
                started = True
                task_status.started()

        try:
            with listener:
                while True:
                    try:
                        await self._listen(ready)
                        reason = "the connection closed"
                    except Exception as exc:  # whatever broke, the listener stays supervised
                        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    self._down(reason)
                    if not started:
                        started = True
                        task_status.started()
                    await anyio.sleep(self.backoff.delay(failures))
                    failures += 1
        finally:
            self._healthy = False
            if not started:
                task_status.started()

    def _up(self) -> None:
        if self._healthy:
            return
        self._healthy = True
        woken = self._local.deliver_all()
        if self._down_since is not None:
            logger.info(
                "%r listens again after %.1f s; %d waiter(s) re-read once",
                self,
                anyio.current_time() - self._down_since,
                woken,
            )
            self._down_since = None

    def _missed(self, reason: str) -> None:
        """The listener stayed up but may have missed messages: wake every waiter once."""
        woken = self._local.deliver_all()
        logger.info("%r: %s; %d waiter(s) re-read once", self, reason, woken)

    def _down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = anyio.current_time()
            logger.warning(
                "%r %s (%s); waiters poll storage every wait_poll_interval until it is back",
                self,
                "lost its connection" if self._healthy else "cannot listen",
                reason,
            )
        else:
            logger.debug("%r still cannot listen (%s)", self, reason)
        if self._healthy:
            self._healthy = False
            self._local.deliver_all()


__all__ = ["Backoff", "SharedNotifier"]
