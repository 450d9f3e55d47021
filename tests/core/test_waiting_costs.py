"""What a waiter costs while it waits: nothing while its notifier is healthy (no storage read, no
timer but its own deadline, no extra task), a poll every ``wait_poll_interval`` only while the
notifier is down, and one read when it is back.

Time here is virtual: these tests run on trio with its ``MockClock``, which jumps to the next
deadline as soon as every task is blocked. Half a minute of waiting takes no real time, and a
stray poll would show up as a storage read (counted on the real memory storage)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import pytest
import trio.testing

from magiclink_core import MagicLinks, SignIn, SignInStatus, VerificationStatus
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Clock, Notifier
from magiclink_core.shared_notifier import SharedNotifier
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock

from ._support import CountingStorage, World, signed_up

pytestmark = pytest.mark.anyio

POLL = timedelta(seconds=2)
HALF_A_MINUTE = timedelta(seconds=30)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


class SwitchableNotifier(SharedNotifier):
    """A shared notifier whose connection the test takes down and brings back: the real
    supervision, health and fan-out of :class:`SharedNotifier` over a scripted transport."""

    def __init__(self) -> None:
        super().__init__()
        self.reachable = True
        self._lost = anyio.Event()

    def __repr__(self) -> str:
        return "SwitchableNotifier()"

    def lose(self) -> None:
        self.reachable = False
        self._lost.set()

    async def _listen(self, ready: Callable[[], None]) -> None:
        if not self.reachable:
            raise ConnectionRefusedError("refused")
        self._lost = anyio.Event()
        ready()
        await self._lost.wait()

    async def publish(self, channel: str) -> None:
        self._deliver(channel)


async def changed(health: Any) -> None:
    """Wait for the notifier's health to change (it wakes every subscriber then), failing
    rather than hanging: a minute of virtual time passes at once when nothing else can run."""
    with anyio.fail_after(60):
        await health.wait()


class LoopClock:
    """The domain's clock on the event loop's (virtual) time, so a link expires as the wait
    goes by."""

    def now(self) -> datetime:
        return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=anyio.current_time())


def a_world(
    notifier: Notifier | None = None, clock: Clock | None = None, **settings: Any
) -> tuple[World, CountingStorage]:
    from magiclink_core import Settings
    from tests.support import SECRET

    from ._support import BASE_URL

    counting = CountingStorage(MemoryStorage())
    mailer = MemoryMailer()
    options: dict[str, Any] = {
        "secret": SECRET,
        "base_url": BASE_URL,
        "links_per_address": 0,
        "cross_device": "allow",
        "wait_poll_interval": POLL,
    }
    options.update(settings)
    links = MagicLinks(
        Settings(**options),
        storage=counting,
        mailer=mailer,
        notifier=notifier,
        clock=clock or FakeClock(),
    )
    return World(links, counting.inner, mailer, FakeClock()), counting  # type: ignore[arg-type]


async def started_sign_in(world: World, email: str = "ann@example.org") -> tuple[Any, SignIn, str]:
    await signed_up(world, email)
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, email)
    sign_in = await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    return client, sign_in, world.last_link(email)


# -- healthy: nothing at all ---------------------------------------------------------------------


async def test_idle_waiters_read_nothing_over_a_long_wait() -> None:
    world, storage = a_world()
    waits = []
    for n in range(10):
        client, sign_in, _ = await started_sign_in(world, f"user{n}@example.org")
        waits.append((client, sign_in))
    results: list[SignIn] = []

    async def wait(client: Any, sign_in: SignIn) -> None:
        results.append(
            await world.links.wait_for_sign_in(client, sign_in.id, timeout=HALF_A_MINUTE)
        )

    before, started = storage.reads, anyio.current_time()
    async with anyio.create_task_group() as group:
        for client, sign_in in waits:
            group.start_soon(wait, client, sign_in)
    assert anyio.current_time() - started == pytest.approx(30)  # the whole wait went by
    # one read each when the wait begins (after subscribing; it checks ownership too), none
    # for 30 s: 15 polls each would have shown here
    assert storage.reads - before == 10
    assert all(r.status is SignInStatus.NEEDS_FIRST_FACTOR for r in results)


async def test_a_parked_waiter_is_one_task_and_is_woken_by_the_click_with_one_read() -> None:
    world, storage = a_world()
    client, sign_in, token = await started_sign_in(world)
    phone = await world.client()
    results: list[SignIn] = []

    async def wait() -> None:
        results.append(await world.links.wait_for_sign_in(client, sign_in.id))

    async with anyio.create_task_group() as group:
        tasks_before = len(anyio.get_running_tasks())
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert len(anyio.get_running_tasks()) == tasks_before + 1  # no helper task per round
        await world.links.verify_link(token, phone)
        clicked = storage.reads
    assert results[0].status is SignInStatus.COMPLETE
    assert storage.reads - clicked == 1  # woken, it re-read once and had its answer


async def test_cancel_ends_an_idle_wait_with_no_extra_read() -> None:
    world, storage = a_world()
    client, sign_in, _ = await started_sign_in(world)
    cancelled = anyio.Event()
    results: list[SignIn] = []

    async def wait() -> None:
        results.append(
            await world.links.wait_for_sign_in(
                client, sign_in.id, timeout=HALF_A_MINUTE, cancelled=cancelled
            )
        )

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        parked = storage.reads
        await anyio.sleep(20)  # virtual: 10 poll intervals go by, and nothing is read
        assert storage.reads == parked
        cancelled.set()
    assert storage.reads == parked
    assert results[0].status is SignInStatus.NEEDS_FIRST_FACTOR


async def test_a_wait_ends_when_its_link_expires_without_polling() -> None:
    # expiry is not a write: the wait's deadline is the link's expiry, not a poll
    world, storage = a_world(clock=LoopClock(), link_ttl=timedelta(seconds=30))
    client, sign_in, _ = await started_sign_in(world)
    await anyio.sleep(20)  # virtual: the link has 10 s left
    before, started = storage.reads, anyio.current_time()
    await world.links.wait_for_sign_in(client, sign_in.id, timeout=HALF_A_MINUTE)
    assert anyio.current_time() - started == pytest.approx(10.05, abs=0.01)
    assert storage.reads - before == 1
    after = await world.links.get_sign_in(client, sign_in.id)
    assert after.verification is not None
    assert after.verification.status is VerificationStatus.EXPIRED


# -- down: polling, and only then ----------------------------------------------------------------


async def test_a_waiter_polls_only_while_its_notifier_is_down() -> None:
    notifier = SwitchableNotifier()
    world, storage = a_world(notifier=notifier)
    client, sign_in, token = await started_sign_in(world)
    phone = await world.client()
    results: list[SignIn] = []
    clicked = 0

    async def wait() -> None:
        results.append(await world.links.wait_for_sign_in(client, sign_in.id))

    async with (
        notifier,
        notifier.subscribe("health") as health,  # woken, like every waiter, when it changes
        anyio.create_task_group() as group,
    ):
        assert notifier.healthy
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        parked = storage.reads
        await anyio.sleep(4)  # healthy: nothing
        assert storage.reads == parked

        notifier.lose()  # down at t=4: one read at once, then one per poll interval
        await changed(health)
        await anyio.sleep(5)
        assert not notifier.healthy
        assert storage.reads == parked + 1 + 2  # at 4 (woken), 6 and 8 s

        notifier.reachable = True  # back after the supervisor's next (backed-off) attempt
        await changed(health)
        assert notifier.healthy
        await anyio.wait_all_tasks_blocked()
        back = storage.reads
        await anyio.sleep(10)  # healthy again: nothing (the whole wait is 30 s at most)
        assert storage.reads == back

        await world.links.verify_link(token, phone)
        clicked = storage.reads
    assert results[0].status is SignInStatus.COMPLETE
    assert storage.reads == clicked + 1  # woken by the click, not by a poll


async def test_reconnecting_makes_each_waiter_read_once() -> None:
    notifier = SwitchableNotifier()
    world, storage = a_world(notifier=notifier, wait_poll_interval=timedelta(hours=1))
    waits = []
    for n in range(5):
        client, sign_in, _ = await started_sign_in(world, f"user{n}@example.org")
        waits.append((client, sign_in))

    async with (
        notifier,
        notifier.subscribe("health") as health,
        anyio.create_task_group() as group,
    ):
        for client, sign_in in waits:
            group.start_soon(world.links.wait_for_sign_in, client, sign_in.id)
        await anyio.wait_all_tasks_blocked()
        parked = storage.reads
        notifier.lose()
        await changed(health)
        await anyio.wait_all_tasks_blocked()
        assert storage.reads == parked + 5  # each woken once to start polling
        notifier.reachable = True
        await changed(health)
        await anyio.wait_all_tasks_blocked()
        assert storage.reads == parked + 5 + 5  # each re-read once: a lost click is caught
        group.cancel_scope.cancel()


async def test_a_shared_notifier_never_started_means_polling_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the app forgot `async with links:`: waiters still get their answer, by polling
    notifier = SwitchableNotifier()
    world, storage = a_world(notifier=notifier)
    waits = []
    for n in range(3):
        client, sign_in, _ = await started_sign_in(world, f"user{n}@example.org")
        waits.append((client, sign_in))
    caplog.set_level(logging.WARNING, "magiclink")
    before = storage.reads
    async with anyio.create_task_group() as group:
        for client, sign_in in waits:
            group.start_soon(
                partial(world.links.wait_for_sign_in, timeout=timedelta(seconds=29)),
                client,
                sign_in.id,
            )
    assert not notifier.healthy
    assert storage.reads - before == 3 * (1 + 14)  # polls at 2, 4, ... 28 s
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "async with links" in warnings[0]
