"""What every benchmark shares: timing side by side, the rows of the table, the machine.

Timings are CPU time of this process (``time.process_time``), each variant run in turns with the
others (round after round, in an order drawn each round) and the best round kept: on a shared
2-core machine, wall time and a variant run alone measure the neighbours as much as the code.
Ratios compare variants of the same run, never figures of different runs.
"""

from __future__ import annotations

import importlib
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Row:
    """One line of the table: a figure beside its floor or peer of the same run."""

    what: str
    figure: str
    versus: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: no target, or not judged (a skipped peer)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: ""}[self.met]


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)


async def side_by_side(
    variants: dict[str, Callable[[], Awaitable[object]]],
    *,
    n: int,
    rounds: int,
    before_round: Callable[[str], Awaitable[object]] | None = None,
) -> dict[str, float]:
    """Seconds of CPU per call of each variant: the best of ``rounds`` rounds of ``n`` calls,
    the variants taking turns within each round, in an order drawn afresh every round (seeded,
    so runs repeat). ``before_round(name)``, untimed, readies what the variant's next ``n``
    calls use.

    Drawn rather than fixed: a round pays for what the round before it left in the processor's
    caches, and in a fixed order the same variant always follows the same one. The middleware
    section's bare app, always run right after a row that waits on Redis, read 10.7–12.3 µs
    there against 10.6–11.1 µs beside only its two peers, and one run read the middleware
    without a cookie at 0.92× the bare app."""
    best = dict.fromkeys(variants, float("inf"))
    for names in _drawn_orders(variants, rounds):
        for name in names:
            if before_round is not None:
                await before_round(name)
            call = variants[name]
            start = time.process_time()
            for _ in range(n):
                await call()
            best[name] = min(best[name], (time.process_time() - start) / n)
    return best


def _drawn_orders(variants: dict[str, Any], rounds: int) -> list[list[str]]:
    """The order of the variants in each of ``rounds`` rounds, drawn (seeded by the variants'
    names, so a run's order repeats)."""
    names = list(variants)
    draw = random.Random("\0".join(names))
    orders = []
    for _ in range(rounds):
        draw.shuffle(names)
        orders.append(list(names))
    return orders


def side_by_side_sync(
    variants: dict[str, Callable[[], object]], *, n: int, rounds: int
) -> dict[str, float]:
    """As :func:`side_by_side`, for plain functions."""
    best = dict.fromkeys(variants, float("inf"))
    for names in _drawn_orders(variants, rounds):
        for name in names:
            call = variants[name]
            start = time.process_time()
            for _ in range(n):
                call()
            best[name] = min(best[name], (time.process_time() - start) / n)
    return best


async def interleaved_wall(
    variants: dict[str, Callable[[], Awaitable[object]]], *, calls: int
) -> dict[str, float]:
    """Median wall-clock seconds per call of each variant, for calls that wait on another
    process (a database server, a thread), whose work this process's CPU time would not see.

    The variants take turns call by call, in an order drawn afresh at every turn (seeded, so
    runs repeat), so each meets the same disk, server and neighbours: a write whose time is
    mostly a commit's ``fsync`` varies by tens of percent from one moment to the next, and
    rounds of hundreds of calls by one variant (best round kept) compared moments more than
    code. Drawn rather than rotated: a call pays for what the call before it left behind (a
    pool's release finishing, a server's backend waking), and with three variants a rotation
    puts the same one before another two turns in three, charging it to that one (measured:
    a consume after asyncpg's pool used by hand took 12–21 µs more, whichever came next).
    The median, because an occasional stall (a WAL checkpoint, the server's own background
    work) lands on whichever call is running, not on the code that made it."""
    names = list(variants)
    taken: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(len(names) * calls)
    for _ in range(calls):
        order.shuffle(names)
        for name in names:
            start = time.perf_counter()
            await variants[name]()
            taken[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in taken.items()}


def not_installed(*modules: str) -> str | None:
    """The first of ``modules`` that cannot be imported here (a section then says it skipped),
    or None."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def ratio(a: float, b: float, *, line: float | None = None, places: int = 2) -> str:
    """``a / b`` as ``1.23×``. Beside a target's ``line`` (its bound), a figure that would round
    onto the line gets the places it needs to show which side of it the verdict found: 1.054×
    is over 1.05, where "1.05×" beside "NOT met" reads as a contradiction."""
    value = a / b
    if line is not None and value != line:
        while places < _MOST_PLACES and f"{value:.{places}f}" == f"{line:.{places}f}":
            places += 1
    return f"{value:.{places}f}×"


_MOST_PLACES = 6


# -- the machine -------------------------------------------------------------------------------


def _first_line(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(servers: dict[str, str | None]) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    os_name = platform.platform()
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    os_name = f"{line.split('=', 1)[1].strip().strip(chr(34))} ({os_name})"
    except OSError:
        pass
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} (this process may use {len(os.sched_getaffinity(0))})"),
        ("load average at the start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("OS", os_name),
    ]
    rows += [(name, version or "not reachable") for name, version in servers.items()]
    return rows


def sample_sign_in_email() -> Any:
    """The sign-in email the mail and link-path benchmarks render and send (as a ``LinkEmail``)."""
    from datetime import timedelta

    from magiclink_core import AttemptKind
    from magiclink_core.emails.renderer import LinkEmail

    return LinkEmail(
        kind=AttemptKind.SIGN_IN,
        to="ann@example.org",
        app_name="magiclink",
        base_url="http://localhost:8000",
        link_url="http://localhost:8000/auth/v1/verify?token=mll1_" + "A" * 43,
        valid_for=timedelta(minutes=10),
        device="Firefox on Linux",
        ip_address="127.0.0.1",
        requested_at=datetime.now(UTC),
    )
