"""The storage time of one request, bounded by one deadline: ``Settings.storage_timeout``.

What a timeout means is decided here, once, for every caller of the service:

- A request's storage calls share one budget of ``storage_timeout`` seconds, summed over the
  calls (time spent waiting for a wake-up between reads is not storage time, so a long poll
  keeps its budget for its reads). A web layer opens the budget per request with
  :meth:`MagicLinks.storage_budget`; a call made outside one gets a budget of its own.
- A call still running when the budget is spent is stopped, and the request fails with
  :class:`~magiclink_core.StorageUnavailableError` (503). So does every later call of that
  request: the outage is not tried again within it.
- An adapter that cannot reach its backend raises ``StorageUnavailableError``; anything else
  an adapter raises (other than a lost race, :class:`~magiclink_core.ports.WriteConflict`) is
  also an outage to the caller. The details (backend, host, port, driver error) go to the
  ``magiclink`` log at warning level, once per request; the error the caller sees carries none.
  A background job trying again through an outage (the withdrawal of an unsent link) logs the
  outage once, not per try: its later tries run inside :func:`outage_logged`.

A write stopped at the deadline has an unknown outcome: it may land after the request gave up.
The click rules make that safe: the same client's retry of the link finds the attempt completed
by its own click and is signed in (``flows.judge_click``: ``ALREADY_COMPLETE``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TypeVar

import anyio

from .domain.errors import AuthError, StorageUnavailableError
from .ports import Change, R, Storage, WriteConflict

logger = logging.getLogger("magiclink")

T = TypeVar("T")


class Budget:
    """The storage time left to one request (seconds), and whether its outage was logged."""

    __slots__ = ("left", "logged", "spent_out")

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self.logged = False
        self.spent_out = False


_current: ContextVar[Budget | None] = ContextVar("magiclink_storage_budget", default=None)
_outage_logged: ContextVar[bool] = ContextVar("magiclink_outage_logged", default=False)


@contextlib.contextmanager
def request_budget(timeout: timedelta) -> Iterator[Budget]:
    """Give the storage calls made inside the block one shared budget of ``timeout``."""
    budget = Budget(timeout.total_seconds())
    reset = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(reset)


@contextlib.contextmanager
def outage_logged() -> Iterator[None]:
    """Inside the block, an outage met by a call with a budget of its own is not logged again:
    the caller is trying again through an outage it has logged already."""
    reset = _outage_logged.set(True)
    try:
        yield
    finally:
        _outage_logged.reset(reset)


def budgeted(storage: Storage, timeout: timedelta) -> Storage:
    """``storage`` as the service's modules call it: through a :class:`BudgetedStorage`, unless
    its calls never wait (``never_waits``: memory, dicts and no I/O). Such a store cannot hang
    or lose its backend, so a deadline and a budget around each of its calls would only cost
    (a wrapper's await, a cancel scope and two clock reads per call, on every link click)."""
    if getattr(storage, "never_waits", False):
        return storage
    return BudgetedStorage(storage, timeout)


class BudgetedStorage:
    """A :class:`~magiclink_core.ports.Storage` whose every call spends the current request's
    budget (see the module's text). The service's modules call storage only through it, or
    through the storage itself when it never waits (:func:`budgeted`)."""

    __slots__ = ("_seconds", "inner")

    def __init__(self, inner: Storage, timeout: timedelta) -> None:
        self.inner = inner
        self._seconds = timeout.total_seconds()

    async def _spend(self, call: Callable[[], Awaitable[T]]) -> T:
        budget = _current.get()
        if budget is None:  # outside a request's budget: this call has a budget of its own
            budget = Budget(self._seconds)
            budget.logged = _outage_logged.get()
        if budget.spent_out or budget.left <= 0:
            budget.spent_out = True
            raise StorageUnavailableError()
        started = time.monotonic()
        try:
            # a CancelScope of its own, not anyio.fail_after (a generator around the same scope)
            with anyio.CancelScope(deadline=anyio.current_time() + budget.left):
                return await call()
            raise TimeoutError  # only reached when the scope cancelled the call
        except TimeoutError as exc:
            budget.spent_out = True
            _log_once(budget, f"no answer within storage_timeout ({self._seconds:g} s)", exc)
            raise StorageUnavailableError() from exc
        except StorageUnavailableError as exc:
            budget.spent_out = True
            _log_once(budget, exc.long_message, exc)
            raise StorageUnavailableError() from exc
        except (WriteConflict, AuthError):
            raise
        except Exception as exc:  # an adapter's own failure: still an outage to the caller
            budget.spent_out = True
            _log_once(budget, f"{type(exc).__name__}: {exc}", exc)
            raise StorageUnavailableError() from exc
        finally:
            budget.left -= time.monotonic() - started

    async def get(self, kind: type[R], id: str) -> R | None:
        return await self._spend(lambda: self.inner.get(kind, id))

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        return await self._spend(lambda: self.inner.find(kind, field, value))

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        return await self._spend(lambda: self.inner.list(kind, field, value))

    async def apply(self, changes: Sequence[Change]) -> None:
        await self._spend(lambda: self.inner.apply(changes))

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        return await self._spend(
            lambda: self.inner.increment(key, window=window, now=now, amount=amount)
        )

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        return await self._spend(lambda: self.inner.purge(now, limit=limit))

    async def close(self) -> None:
        await self.inner.close()


def _log_once(budget: Budget, detail: str, exc: BaseException) -> None:
    if budget.logged:
        return
    budget.logged = True
    logger.warning(
        "storage unavailable: %s; answering 503 (temporarily unavailable)",
        detail,
        exc_info=not isinstance(exc, StorageUnavailableError | TimeoutError),
    )
