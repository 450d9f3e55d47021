"""Seeing a write through: what the PostgreSQL and Redis adapters share about a write already
sent when their caller gives up.

Once a write is on the wire its outcome is the server's, so a caller that is cancelled (a client
that went away) still waits for the answer: the call returns with its outcome settled, as the
Storage port promises. A caller's *deadline* (the request's ``Settings.storage_timeout``) is
honoured too, with :data:`SETTLE_GRACE` seconds more for a write already sent (counted from
the cancellation, for a caller cancelled without a deadline): a server that
answers settles it well within that; one that does not answer leaves the outcome unknown, and
the call fails as unavailable (the write may still land later; the click rules allow for it).

Two ways, one promise: :func:`seen_through` (PostgreSQL) holds back any cancellation of the
calling task, asyncio's own included, at the cost of a small object per wait; :func:`settling`
(Redis, whose driver times its commands out by cancelling the task, which a held-back
cancellation would delay) is anyio's shielded scope, which sees anyio's cancellations only.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

import anyio

_T = TypeVar("_T")

SETTLE_GRACE = 1.0
"""Seconds a write already sent may run past its caller's deadline to settle its outcome."""


def settling() -> anyio.CancelScope:
    """A scope shielding a write from its caller's cancellation, not from its deadline (plus
    :data:`SETTLE_GRACE`). Enter it where the write is sent; check :func:`timed_out` after."""
    # -inf when the caller is cancelled already: the grace then runs from now. Without a
    # deadline (inf) the clock is not read: each anyio call looks its event loop up again
    deadline = anyio.current_effective_deadline()
    if deadline != math.inf:
        deadline = max(deadline, anyio.current_time())
    return anyio.CancelScope(shield=True, deadline=deadline + SETTLE_GRACE)


def timed_out(scope: anyio.CancelScope) -> TimeoutError | None:
    """The error to raise (as unavailable) when ``scope`` ran out of time, else None."""
    if scope.cancelled_caught:
        return TimeoutError("no answer before the caller's deadline")
    return None


class _Settling(Generic[_T]):
    """``await seen_through(write)``: ``write`` awaited in the calling task, with the task's
    cancellation held back until each of its waits has its answer (see :func:`seen_through`)."""

    __slots__ = ("_cancelled", "_gave_up", "_give_up", "_waiting", "_write")

    def __init__(self, write: Coroutine[Any, Any, _T]) -> None:
        self._write = write
        self._cancelled: BaseException | None = None
        self._give_up: asyncio.TimerHandle | None = None
        self._gave_up = False
        self._waiting: asyncio.Future[Any] | None = None

    def __await__(self) -> Generator[Any, None, _T]:
        steps = self._write.__await__()
        try:
            while True:
                try:
                    yielded = steps.send(None)
                except StopIteration as done:
                    result: _T = done.value
                    break
                except BaseException as exc:
                    if self._gave_up and isinstance(exc, asyncio.CancelledError):
                        # the grace ran out: the outcome is unknown
                        raise TimeoutError("no answer before the caller's deadline") from exc
                    if self._cancelled is not None and exc is not self._cancelled:
                        # settled (refused, or failed) while the caller was going: it still goes
                        raise self._cancelled from exc
                    raise
                if yielded is None:  # a bare yield (``sleep(0)``): a pause, nothing to answer
                    try:
                        yield None
                    except asyncio.CancelledError as exc:
                        self._cancel(exc)
                    continue
                self._waiting = yielded
                try:
                    yield _Waiter(yielded, self)
                except asyncio.CancelledError as exc:
                    # the task's own cancellation, thrown once the answer came (or the wait
                    # itself cancelled: the write sees that when it reads the answer below)
                    if not yielded.cancelled():
                        self._cancel(exc)
                except GeneratorExit:  # the coroutine is closed (its task destroyed)
                    steps.close()
                    raise
                except Exception:  # noqa: S110 - the answer is an error: the write reads it
                    pass
                # the task is woken only by the answer: the write now reads it from the future
        finally:
            if self._give_up is not None:
                self._give_up.cancel()
        if self._cancelled is not None:
            raise self._cancelled  # the write settled; the caller still goes
        return result

    def _cancel(self, exc: BaseException | None = None) -> None:
        """The task was asked to stop: from now on the write has :data:`SETTLE_GRACE` left."""
        if exc is not None:
            self._cancelled = exc
        if self._give_up is None:
            # the wait's own loop: ``Task.cancel()`` may be called where no loop runs
            waiting = self._waiting
            loop = asyncio.get_running_loop() if waiting is None else waiting.get_loop()
            self._give_up = loop.call_later(SETTLE_GRACE, self._expire)

    def _expire(self) -> None:
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            self._gave_up = True
            waiting.cancel()  # the driver takes it as a cancelled call (asyncpg: a cancel request)


class _Waiter:
    """What the task waits on instead of the driver's own future: asyncio's protocol for a
    future-like object (``_asyncio_future_blocking``, ``get_loop``, ``add_done_callback``,
    ``cancel``). The task wakes when the driver's future is done, as if it waited on it; a
    ``Task.cancel()`` meanwhile finds this object, whose ``cancel`` refuses, so the task is
    marked to raise ``CancelledError`` at that wake-up instead of cancelling the call."""

    __slots__ = ("_asyncio_future_blocking", "_future", "_settling")

    def __init__(self, future: asyncio.Future[Any], settling: _Settling[Any]) -> None:
        self._asyncio_future_blocking = True
        self._future = future
        self._settling = settling

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._future.get_loop()

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        self._future.add_done_callback(fn, context=context)

    def cancel(self, msg: Any = None) -> bool:
        self._settling._cancel()
        return False  # the task raises CancelledError once the answer is in


def seen_through(write: Coroutine[Any, Any, _T]) -> Awaitable[_T]:
    """Await ``write`` (a coroutine sending one write and reading its answer, on asyncio) so
    that the calling task's cancellation (an anyio scope's, a deadline's, or a plain
    ``Task.cancel()``) waits for the answer of what was sent, for up to :data:`SETTLE_GRACE`
    after the first request to stop; then the task raises its ``CancelledError`` with the
    outcome settled. A write with no answer by then has its wait cancelled (the driver cancels
    the call) and raises ``TimeoutError``: the outcome is unknown.

    It does what ``with settling(): await write`` does, without a cancel scope (measured
    around a one-future write: 1.9 µs of CPU against the scope's 6.6), and also holds back a
    task's native cancellation, which anyio's shield does not see. The driver must not cancel
    its own task for a timeout of its own (asyncpg does not: its timeouts fail the call's
    future); redis-py does (``asyncio.timeout``), so the Redis adapter keeps
    :func:`settling`."""
    return _Settling(write)
