"""The notifier contract: what every Notifier must do, whatever carries its wake-ups.

Subclass :class:`NotifierContract` and override its fixtures, as for the storage contract. A
notifier with a connection to lose (a shared one) also overrides ``outage``, so the suite can
prove what waiters rely on during an outage: the notifier says it is down, wakes its subscribers
so they start polling, and wakes each of them once more, and only once, when it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, suppress
from typing import Protocol

import anyio
import pytest
from anyio.abc import TaskGroup

from ..domain.errors import StorageUnavailableError
from ..ports import Notifier, Subscription

BOUND = 20  # seconds: only to catch a hang (a reconnect waits out a backoff delay)


class Outage(Protocol):
    """Cuts the first notifier's connection to its backend, and restores it (a TCP proxy that
    refuses and drops connections, say). Only the first notifier of the pair may be affected."""

    async def cut(self) -> None: ...

    async def restore(self) -> None: ...


class Wakes:
    """Counts the wake-ups of named subscriptions, each in a task of ``group``; ``until`` waits
    for a condition on the counts without sleeping."""

    def __init__(self, group: TaskGroup, **subscriptions: Subscription) -> None:
        self.counts = dict.fromkeys(subscriptions, 0)
        self._changed = anyio.Event()
        for name, subscription in subscriptions.items():
            group.start_soon(self._count, name, subscription)

    async def _count(self, name: str, subscription: Subscription) -> None:
        while True:
            await subscription.wait()
            self.counts[name] += 1
            self._changed.set()

    async def until(self, condition: Callable[[dict[str, int]], bool]) -> None:
        with anyio.fail_after(BOUND):
            while not condition(self.counts):
                self._changed = changed = anyio.Event()
                await changed.wait()


@pytest.mark.anyio
class NotifierContract:
    """Override ``notifiers`` to yield two notifiers sharing one backend (two app instances),
    not yet entered; for an in-process notifier, the same one twice. Override ``outage`` to
    return an :class:`Outage` of the first one's connection, if it has one."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def notifiers(self) -> AsyncIterator[tuple[Notifier, Notifier]]:
        raise NotImplementedError("override the notifiers fixture")
        yield  # pragma: no cover

    @pytest.fixture
    def outage(self) -> Outage | None:
        return None

    @pytest.fixture
    async def running(
        self, notifiers: tuple[Notifier, Notifier]
    ) -> AsyncIterator[tuple[Notifier, Notifier]]:
        """The two notifiers, entered (as ``async with links:`` enters them)."""
        here, there = notifiers
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(here)
            if there is not here:
                await stack.enter_async_context(there)
            yield here, there

    # -- wake-ups ------------------------------------------------------------------------------

    async def test_a_publish_wakes_a_subscriber_on_the_other_instance(
        self, running: tuple[Notifier, Notifier]
    ) -> None:
        here, there = running
        async with here.subscribe("channel-a") as subscription:
            await there.publish("channel-a")  # once: an entered notifier is listening already
            with anyio.fail_after(BOUND):
                await subscription.wait()

    async def test_every_subscriber_is_woken_and_other_channels_are_not(
        self, running: tuple[Notifier, Notifier]
    ) -> None:
        here, there = running
        async with (
            here.subscribe("channel-b") as first,
            there.subscribe("channel-b") as second,
            here.subscribe("channel-c") as bystander,
            here.subscribe("barrier") as barrier,
            anyio.create_task_group() as group,
        ):
            wakes = Wakes(group, first=first, second=second, bystander=bystander)
            await there.publish("channel-b")
            await wakes.until(lambda c: c["first"] >= 1 and c["second"] >= 1)
            # a later message heard here means channel-b's has been delivered everywhere here
            await there.publish("barrier")
            with anyio.fail_after(BOUND):
                await barrier.wait()
            await anyio.wait_all_tasks_blocked()
            # the publishing instance may hear its own message twice (delivered at once, then
            # echoed by the backend): a spare wake-up costs a read, never a wrong answer
            assert wakes.counts["first"] == 1 and wakes.counts["second"] >= 1
            assert wakes.counts["bystander"] == 0
            group.cancel_scope.cancel()

    async def test_a_notifier_not_entered_still_publishes(
        self, notifiers: tuple[Notifier, Notifier]
    ) -> None:
        here, there = notifiers
        async with here, here.subscribe("channel-d") as subscription:
            await there.publish("channel-d")
            with anyio.fail_after(BOUND):
                await subscription.wait()

    # -- health --------------------------------------------------------------------------------

    async def test_health_follows_the_life_cycle(
        self, notifiers: tuple[Notifier, Notifier], outage: Outage | None
    ) -> None:
        here, _ = notifiers
        shared = outage is not None
        assert here.healthy is not shared  # a shared notifier hears nobody until it runs
        async with here:
            assert here.healthy  # entering returns once it listens
        assert here.healthy is not shared
        await here.close()
        await here.close()  # closing twice is harmless

    async def test_an_outage_is_seen_and_each_subscriber_re_reads_once_when_it_ends(
        self, running: tuple[Notifier, Notifier], outage: Outage | None
    ) -> None:
        if outage is None:
            pytest.skip("this notifier has no connection to lose")
        here, there = running
        async with (
            here.subscribe("channel-e") as first,
            here.subscribe("channel-f") as second,
            here.subscribe("barrier") as barrier,
            anyio.create_task_group() as group,
        ):
            wakes = Wakes(group, first=first, second=second)
            await outage.cut()
            # woken when it goes down, so waiters start polling
            await wakes.until(lambda c: c["first"] >= 1 and c["second"] >= 1)
            assert not here.healthy
            await there.publish("channel-e")  # lost: that is what the wake-up at reconnect is for
            with suppress(StorageUnavailableError):  # it cannot reach the backend, but...
                await here.publish("channel-f")  # ...this instance's own waiters are woken
            await wakes.until(lambda c: c["second"] >= 2)
            await anyio.wait_all_tasks_blocked()
            down = dict(wakes.counts)

            await outage.restore()
            await wakes.until(lambda c: c["first"] > down["first"] and c["second"] > down["second"])
            assert here.healthy
            # heard after the reconnect, so anything the reconnect caused has been delivered
            await there.publish("barrier")
            with anyio.fail_after(BOUND):
                await barrier.wait()
            await anyio.wait_all_tasks_blocked()
            assert wakes.counts == {"first": down["first"] + 1, "second": down["second"] + 1}
            group.cancel_scope.cancel()


__all__ = ["NotifierContract", "Outage", "Wakes"]
