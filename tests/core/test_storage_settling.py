"""A write already sent to PostgreSQL is seen through when its caller is cancelled: by an anyio
scope (a request's deadline, a client gone), or by asyncio itself (``Task.cancel()``,
``asyncio.timeout``, as a FastAPI or Quart app may). The caller waits for the server's answer,
for up to ``SETTLE_GRACE`` after the request to stop, then goes with the outcome settled; a
server with no answer by then fails the call as unavailable.

The write is held on the server by a row lock that another connection keeps, so the test
decides when the answer comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from magiclink_core import StorageUnavailableError
from magiclink_core.domain.models import Link
from magiclink_core.ports import Insert, Update
from magiclink_core.storage import PostgresStorage, _settle
from magiclink_core.testing import make_record
from tests.support import POSTGRES_DSN

from ._services import storages

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

HELD = 0.3  # seconds the answer is held after the caller was cancelled


async def cancel_by_task(task: asyncio.Task[None], scope: anyio.CancelScope) -> None:
    task.cancel()


async def cancel_by_scope(task: asyncio.Task[None], scope: anyio.CancelScope) -> None:
    scope.cancel()


CANCELS: dict[str, Callable[[asyncio.Task[None], anyio.CancelScope], Awaitable[None]]] = {
    "Task.cancel": cancel_by_task,
    "anyio scope": cancel_by_scope,
}


class Locked:
    """A stored link, and a connection of the test's own holding its row lock."""

    def __init__(self, store: PostgresStorage, link: Link, locker: Any) -> None:
        self.store, self.link, self.locker = store, link, locker

    async def waiting_on_lock(self) -> None:
        """Until the server shows a statement waiting for the row lock (the write was sent)."""
        with anyio.fail_after(10):
            while not await self.locker.fetchval(  # noqa: ASYNC110 - the server's state
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            ):
                await anyio.sleep(0.005)  # no event tells it

    async def unlock(self) -> None:
        await self.locker.execute("ROLLBACK")

    async def stored(self) -> Link | None:
        return await self.store.get(Link, self.link.id)


@pytest.fixture
async def locked() -> AsyncIterator[Locked]:
    async with storages("postgres") as [store]:
        assert isinstance(store, PostgresStorage)
        link = make_record(Link)
        await store.apply([Insert(link)])
        locker = await asyncpg.connect(POSTGRES_DSN, server_settings=store.server_settings())
        await locker.execute("BEGIN")
        await locker.execute("SELECT 1 FROM links WHERE id = $1 FOR UPDATE", link.id)
        try:
            yield Locked(store, link, locker)
        finally:
            await locker.close()


def consumed(link: Link) -> Update:
    return Update(link.bumped(link.created_at, consumed_at=link.created_at))


async def consume_in_task(locked: Locked) -> tuple[asyncio.Task[None], anyio.CancelScope]:
    """A task consuming the locked link (its write waits on the server), and the anyio scope
    it runs in. A cancelled one may return from ``apply`` and stop at its next checkpoint, or
    raise from ``apply``: both leave the outcome settled."""
    scope = anyio.CancelScope()

    async def consume() -> None:
        with scope:
            await locked.store.apply([consumed(locked.link)])
            await anyio.lowlevel.checkpoint()

    task = asyncio.get_running_loop().create_task(consume())
    await locked.waiting_on_lock()
    return task, scope


@pytest.mark.parametrize("cancel", CANCELS)
async def test_a_cancelled_callers_write_waits_for_its_answer(
    locked: Locked, cancel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_settle, "SETTLE_GRACE", 10.0)  # the answer comes well within it
    task, scope = await consume_in_task(locked)
    await CANCELS[cancel](task, scope)
    # without seeing it through, the driver's cancel request would end the call (and abort
    # the write) at once: the caller must still be waiting for the answer
    done, _ = await asyncio.wait({task}, timeout=HELD)
    assert not done, "the call ended before its write had an answer"
    await locked.unlock()
    with anyio.fail_after(10):
        await asyncio.wait({task})
    if cancel == "Task.cancel":
        assert task.cancelled()  # the caller still goes, with its own cancellation
    else:
        assert task.done() and task.exception() is None  # the scope took its cancellation
    stored = await locked.stored()
    assert stored is not None and stored.consumed_at is not None  # the write landed, then
    assert stored.version == locked.link.version + 1


async def test_asyncio_timeout_sees_the_write_through_then_times_out(
    locked: Locked, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_settle, "SETTLE_GRACE", 10.0)
    outcome: list[str] = []

    async def consume() -> None:
        try:
            async with asyncio.timeout(0.05):  # expires while the write waits for the lock
                await locked.store.apply([consumed(locked.link)])
        except TimeoutError:
            outcome.append("timed out")

    task = asyncio.get_running_loop().create_task(consume())
    await locked.waiting_on_lock()
    done, _ = await asyncio.wait({task}, timeout=HELD)
    assert not done, "the call ended before its write had an answer"
    await locked.unlock()
    with anyio.fail_after(10):
        await task
    assert outcome == ["timed out"]  # asyncio's timeout, as its caller expects it
    stored = await locked.stored()
    assert stored is not None and stored.consumed_at is not None


async def test_a_write_refused_after_its_caller_was_cancelled_still_cancels_it(
    locked: Locked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock's holder changes the row first: the write, once it has its answer, matched
    nothing (a lost race). Its caller asked to stop meanwhile, so it gets its cancellation,
    not the conflict: a cancellation is never swallowed."""
    monkeypatch.setattr(_settle, "SETTLE_GRACE", 10.0)
    task, _ = await consume_in_task(locked)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=HELD)
    assert not done, "the call ended before its write had an answer"
    await locked.locker.execute(
        "UPDATE links SET version = version + 1 WHERE id = $1", locked.link.id
    )
    await locked.locker.execute("COMMIT")
    with anyio.fail_after(10):
        await asyncio.wait({task})
    assert task.cancelled()
    stored = await locked.stored()
    assert stored is not None and stored.consumed_at is None  # the race was lost: unwritten
    assert stored.version == locked.link.version + 1


@pytest.mark.parametrize("cancel", CANCELS)
async def test_a_write_with_no_answer_within_the_grace_fails_as_unavailable(
    locked: Locked, cancel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = 0.3
    monkeypatch.setattr(_settle, "SETTLE_GRACE", grace)
    task, scope = await consume_in_task(locked)
    started = time.monotonic()
    await CANCELS[cancel](task, scope)
    with anyio.fail_after(10):  # a bound to catch a hang only
        await asyncio.wait({task})
    assert time.monotonic() - started >= grace * 0.9  # it waited for the answer first
    assert isinstance(task.exception(), StorageUnavailableError)
    await locked.unlock()
    # the storage still works, on the same pool
    fresh = make_record(Link)
    await locked.store.apply([Insert(fresh)])
    assert await locked.store.get(Link, fresh.id) == fresh


async def test_an_uncancelled_write_is_not_held_back(locked: Locked) -> None:
    task, _ = await consume_in_task(locked)
    await locked.unlock()
    with anyio.fail_after(10):
        await task
    stored = await locked.stored()
    assert stored is not None and stored.consumed_at is not None
