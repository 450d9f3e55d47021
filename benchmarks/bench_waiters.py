"""Idle waiters and click-to-wake, in one process, on memory storage.

- memory: the heap traced (tracemalloc) per idle ``MagicLinks.wait_for_sign_in`` waiter, with
  N waiters parked at once, each on its own sign-in; beside it the floor, N parked tasks that
  each wait on an ``anyio.Event`` (the least any waiter can hold), and a waiter given a
  ``cancelled`` event (the core's option for a caller that ends waits by an event: a task group
  and a watching task per wait; the HTTP API cancels the wait's scope instead, since 2c98408);
- CPU while idle: process time spent over a few seconds with the N waiters parked, beside the N
  parked tasks (a waiter that polled or kept a timer would show here);
- storage reads made by the parked waiters over that time (zero while the notifier is healthy);
- click-to-wake: from the start of ``verify_link`` (the click, on another client) to the return of
  the waiter's ``wait_for_sign_in``, p50 and p99, alone and beside 1,000 other idle waiters;
  beside it the floor, from ``Event.set()`` to the waiting task running.

Timings are printed, never asserted. Run from the repository root:
    python -m benchmarks.bench_waiters            # 10,000 waiters
    python -m benchmarks.bench_waiters --quick    # a small run that only checks it works
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import anyio

from magiclink_core import Client, MagicLinks, Settings, SignIn
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage

SECRET = "benchmark-secret-" + "x" * 40
TOKEN = re.compile(r"[?&]token=(mll1_[A-Za-z0-9_-]{43})")
LONG = timedelta(seconds=30)


class CountingMemoryStorage(MemoryStorage):
    """Memory storage that counts its reads."""

    reads = 0

    async def get(self, kind: Any, id: str) -> Any:
        self.reads += 1
        return await super().get(kind, id)


def make_links() -> tuple[MagicLinks, CountingMemoryStorage, MemoryMailer]:
    storage = CountingMemoryStorage()
    mailer = MemoryMailer()
    settings = Settings(
        secret=SECRET,
        base_url="http://localhost:8000",
        links_per_address=0,
        cross_device="allow",
    )
    return MagicLinks(settings, storage=storage, mailer=mailer), storage, mailer


async def sign_ins(links: MagicLinks, n: int) -> list[tuple[Client, SignIn]]:
    """``n`` sign-ins, each started by its own client (not yet sent: nothing to render)."""
    started = []
    for i in range(n):
        client, _ = await links.create_client()
        started.append((client, await links.create_sign_in(client, f"user{i}@example.org")))
    return started


def kib(n: float) -> str:
    return f"{n / 1024:.2f} KiB"


# -- memory and idle CPU ---------------------------------------------------------------------


async def traced_per_task(
    n: int, start: Callable[[Any], None], idle_for: float
) -> tuple[float, float]:
    """Bytes traced per parked task and CPU seconds over ``idle_for`` s with all ``n`` parked."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with anyio.create_task_group() as group:
        start(group)
        await anyio.wait_all_tasks_blocked()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()  # CPU is measured untraced
        cpu = time.process_time()
        await anyio.sleep(idle_for)
        cpu = time.process_time() - cpu
        group.cancel_scope.cancel()
    return held / n, cpu


async def memory_and_idle_cpu(n: int, idle_for: float) -> None:
    links, storage, _ = make_links()
    waits = await sign_ins(links, n)

    def start_waiters(group: Any, *, cancellable: bool = False) -> None:
        for client, sign_in in waits:
            kwargs: dict[str, Any] = {"timeout": LONG}
            if cancellable:
                kwargs["cancelled"] = anyio.Event()
            group.start_soon(partial(links.wait_for_sign_in, client, sign_in.id, **kwargs))

    def start_floor(group: Any) -> None:
        for _ in range(n):
            group.start_soon(anyio.Event().wait)

    floor, floor_cpu = await traced_per_task(n, start_floor, idle_for)
    reads = storage.reads
    waiter, waiter_cpu = await traced_per_task(n, start_waiters, idle_for)
    waiter_reads = storage.reads - reads - n  # beyond the one read each makes as it starts
    cancellable, _ = await traced_per_task(n, partial(start_waiters, cancellable=True), 0)
    print(f"{n:,} idle waiters on memory storage (tracemalloc):")
    print(f"  floor, a task parked on an Event     {kib(floor):>10} per task")
    for what, size in (("", waiter), (", cancelled=Event", cancellable)):
        print(f"  wait_for_sign_in{what:<20} {kib(size):>10} per waiter  ({size / floor:.1f}x)")
    print(f"CPU while idle for {idle_for:g} s (process time):")
    print(
        f"  {n:,} parked tasks {floor_cpu * 1e3:6.1f} ms;  {n:,} waiters {waiter_cpu * 1e3:6.1f} ms"
    )
    print(f"  storage reads by the parked waiters while idle: {waiter_reads}")


# -- click-to-wake -----------------------------------------------------------------------------


def percentiles(samples: Sequence[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1e6:8.0f} µs   p99 {p99 * 1e6:8.0f} µs"


async def wake_latency(rounds: int, bystanders: int, warm_up: int = 5) -> list[float]:
    """Click-to-wake of ``rounds`` clicks (after ``warm_up`` uncounted ones: first renders,
    lazy imports)."""
    links, _, mailer = make_links()
    phone, _ = await links.create_client()
    samples = []
    async with anyio.create_task_group() as idle:
        for client, sign_in in await sign_ins(links, bystanders):
            idle.start_soon(partial(links.wait_for_sign_in, client, sign_in.id, timeout=LONG))
        for i in range(warm_up + rounds):
            # a sign-up waiting for its link, clicked on another device
            client, _ = await links.create_client()
            email = f"clicker{i}@example.org"
            sign_up = await links.create_sign_up(client, email)
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
            message = mailer.last_to(email)
            match = TOKEN.search(message.text if message else "")
            if match is None:
                raise RuntimeError("no link in the email")
            woken: list[float] = []

            async def wait(
                client: Client = client, sign_up_id: str = sign_up.id, woken: list[float] = woken
            ) -> None:
                await links.wait_for_sign_up(client, sign_up_id, timeout=LONG)
                woken.append(time.perf_counter())

            async with anyio.create_task_group() as group:
                group.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                clicked = time.perf_counter()
                await links.verify_link(match.group(1), phone)
            samples.append(woken[0] - clicked)
        idle.cancel_scope.cancel()
    return samples[warm_up:]


async def event_floor(rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        event = anyio.Event()
        woken: list[float] = []

        async def wait(event: anyio.Event = event, woken: list[float] = woken) -> None:
            await event.wait()
            woken.append(time.perf_counter())

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            set_at = time.perf_counter()
            event.set()
        samples.append(woken[0] - set_at)
    return samples


async def latencies(rounds: int, bystanders: int) -> None:
    floor = await event_floor(rounds)
    alone = await wake_latency(rounds, 0)
    crowded = await wake_latency(rounds, bystanders)
    print(f"click-to-wake in one process, {rounds} clicks (memory storage):")
    print(f"  floor, Event.set() to the task     {percentiles(floor)}")
    print(f"  verify_link to the waiter's return {percentiles(alone)}")
    print(f"  the same, {bystanders:,} other waiters idle {percentiles(crowded)}")


async def main(waiters: int, idle_for: float, rounds: int, bystanders: int) -> None:
    await memory_and_idle_cpu(waiters, idle_for)
    await latencies(rounds, bystanders)


def run(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a small run: does it work?")
    args = parser.parse_args(argv)
    if args.quick:
        anyio.run(main, 200, 0.2, 20, 50)
    else:
        anyio.run(main, 10_000, 3.0, 300, 1_000)


if __name__ == "__main__":
    run()


async def section(quick: bool) -> Any:
    """This benchmark's printout, as a section of ``python -m benchmarks``."""
    import contextlib
    import io

    from ._harness import Section

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if quick:
            await main(200, 0.2, 20, 50)
        else:
            await main(10_000, 3.0, 300, 1_000)
    result = Section("Idle waiters and click-to-wake, one process, memory storage (target 1)")
    result.note("```\n" + out.getvalue().rstrip() + "\n```")
    return result
