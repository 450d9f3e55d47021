"""Wake-ups between the processes sharing one SQLite file (``SQLiteNotifier``): the notifier
contract, what it does with a dead process's socket, a slow reader and an unsafe directory, and
two real processes, one clicking or revoking while the other waits or serves from its cache."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from magiclink_core import MagicLinks, SignInStatus
from magiclink_core.local_notifier import LocalNotifier
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Notifier
from magiclink_core.session_cache import session_channel, shard_of
from magiclink_core.shared_notifier import Backoff
from magiclink_core.storage import SQLiteStorage, sqlite_notifier
from magiclink_core.storage.sqlite_notifier import SQLiteNotifier, sockets_dir, supported
from magiclink_core.testing import NotifierContract
from magiclink_core.testing.notifier_contract import Wakes
from tests.support import WatchedNotifier

from ._flows import last_token, make_links, sign_up

pytestmark = pytest.mark.anyio

BOUND = 20  # seconds: only to catch a hang

if supported("/tmp/x.db") is not None:  # pragma: no cover - Unix datagram sockets are missing
    pytest.skip("no Unix datagram sockets here", allow_module_level=True)


QUICK = {"keepalive": 0.05, "backoff": Backoff(first=0.01, cap=0.05)}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh directory in ``/tmp``: a socket path holds at most 100 bytes, which pytest's own
    ``tmp_path`` (under ``$TMPDIR``, a worker's folder and the test's name) can pass."""
    with tempfile.TemporaryDirectory(prefix="ml-", dir="/tmp") as name:
        yield Path(name)


class SocketRemoved:
    """The first notifier's socket removed (a cleaner of temporary files), and the directory
    left writable by anyone meanwhile, so it cannot listen again until :meth:`restore`."""

    def __init__(self, notifier: SQLiteNotifier) -> None:
        self.notifier = notifier

    async def cut(self) -> None:
        path = self.notifier.socket_path
        assert path is not None
        self.notifier.directory.chmod(0o777)
        os.unlink(path)

    async def restore(self) -> None:
        self.notifier.directory.chmod(0o700)


class TestSQLiteNotifier(NotifierContract):
    @pytest.fixture
    async def notifiers(self, short_dir: Path) -> AsyncIterator[tuple[Notifier, Notifier]]:
        database = short_dir / "shared.db"
        yield SQLiteNotifier(database, **QUICK), SQLiteNotifier(database, **QUICK)

    @pytest.fixture
    def outage(self, notifiers: tuple[Notifier, Notifier]) -> SocketRemoved:
        here, _ = notifiers
        assert isinstance(here, SQLiteNotifier)
        return SocketRemoved(here)


HAS_PROC_FD = os.path.isdir("/proc/self/fd")
needs_proc_fd = pytest.mark.skipif(
    not HAS_PROC_FD, reason="no /proc/self/fd (Linux) to reach a deep socket"
)


def deep(directory: Path) -> Path:
    """A database in ``directory`` so deep that a socket beside it has too long a path."""
    database = directory / ("d" * 60) / ("e" * 60) / "app.db"
    database.parent.mkdir(parents=True)
    assert len(os.fsencode(sockets_dir(database) / ("0" * 16 + ".sock"))) > 108
    return database


@needs_proc_fd
class TestSQLiteNotifierOfADeepDatabase(TestSQLiteNotifier):
    """The same contract where the sockets' paths are too long to bind or send to as they are."""

    @pytest.fixture
    async def notifiers(self, short_dir: Path) -> AsyncIterator[tuple[Notifier, Notifier]]:
        database = deep(short_dir)
        pair = SQLiteNotifier(database, **QUICK), SQLiteNotifier(database, **QUICK)
        yield pair
        for notifier in pair:
            await notifier.close()


async def test_the_storage_of_a_file_wakes_other_processes_and_one_in_memory_does_not(
    short_dir: Path,
) -> None:
    on_file, in_memory = SQLiteStorage(short_dir / "app.db"), SQLiteStorage(":memory:")
    assert isinstance(on_file.notifier(), SQLiteNotifier)
    assert on_file.notifier() is on_file.notifier()  # one per storage
    assert type(in_memory.notifier()) is LocalNotifier


@needs_proc_fd
async def test_a_deep_database_wakes_its_processes_through_the_directory_it_holds_open(
    short_dir: Path,
) -> None:
    database = deep(short_dir)
    storage, other = SQLiteStorage(database), SQLiteNotifier(database)
    notifier = storage.notifier()
    assert isinstance(notifier, SQLiteNotifier)
    async with notifier, other, notifier.subscribe("magiclink:sign_in:x") as subscription:
        path = notifier.socket_path
        assert path is not None and Path(path).parent == sockets_dir(database)
        # bound in the real directory, where the other processes look
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        await other.publish("magiclink:sign_in:x")
        with anyio.fail_after(BOUND):
            await subscription.wait()
    assert list(sockets_dir(database).iterdir()) == []
    await other.close()
    await storage.close()


async def test_a_deep_database_removed_and_made_anew_is_reached_again(short_dir: Path) -> None:
    # a cleaner of temporary files removes the sockets directory: each process listens again
    # in the new one, and a publish reaches it there, not the directory it held before
    database = deep(short_dir) if HAS_PROC_FD else short_dir / "app.db"
    here, there = SQLiteNotifier(database, **QUICK), SQLiteNotifier(database, **QUICK)
    async with (
        here,
        there,
        here.subscribe("magiclink:sign_in:x") as subscription,
        anyio.create_task_group() as group,
    ):
        await there.publish("magiclink:sign_in:x")  # held open once (a deep one)
        wakes = Wakes(group, here=subscription)
        await wakes.until(lambda c: c["here"] == 1)
        shutil.rmtree(sockets_dir(database))
        # down (its socket is gone), then up again in the new directory: woken for each
        await wakes.until(lambda c: c["here"] >= 3)
        assert here.healthy and sockets_dir(database).is_dir()
        woken = wakes.counts["here"]
        await there.publish("magiclink:sign_in:x")
        await wakes.until(lambda c: c["here"] > woken)
        group.cancel_scope.cancel()
    await there.close()


@pytest.fixture
def unreachable(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database too deep for a socket path, on a system without ``/proc/self/fd`` (as macOS
    and the BSDs are): its processes cannot reach each other."""
    monkeypatch.setattr(sqlite_notifier, "_PROC_FD", str(short_dir / "no-proc"))
    return deep(short_dir)


async def test_a_file_whose_processes_cannot_reach_each_other_gets_a_notifier_never_healthy(
    unreachable: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a publish in another process never reaches it: that is what "not healthy" means, so its
    # waiters poll storage and the session cache does not serve
    storage = SQLiteStorage(unreachable)
    with caplog.at_level(logging.WARNING, logger="magiclink.storage"):
        notifier = storage.notifier()
    assert isinstance(notifier, LocalNotifier) and not notifier.healthy
    assert "cannot wake each other" in caplog.text and "longer than" in caplog.text
    assert "session cache is off" in caplog.text
    async with notifier, notifier.subscribe("magiclink:sign_in:x") as subscription:
        await notifier.publish("magiclink:sign_in:x")  # this process's waiters are still woken
        with anyio.fail_after(BOUND):
            await subscription.wait()
    with pytest.raises(ValueError, match="longer than"):
        SQLiteNotifier(unreachable)
    assert SQLiteStorage(":memory:").notifier().healthy  # nobody else can share that one


def app_on(database: Path, *, poll: timedelta) -> tuple[MagicLinks, MemoryMailer]:
    """An app instance on the SQLite file ``database``, with the storage's own notifier (watched,
    so a test can tell when a waiter waits), polling every ``poll`` while it is not healthy."""
    storage, mailer = SQLiteStorage(database), MemoryMailer()
    notifier = WatchedNotifier(storage.notifier())
    return make_links(storage, mailer, notifier, wait_poll_interval=poll), mailer


@pytest.fixture
async def two_processes(
    unreachable: Path,
) -> AsyncIterator[tuple[tuple[MagicLinks, MemoryMailer], tuple[MagicLinks, MemoryMailer]]]:
    """Two app instances on that file, as two processes are: a storage (and notifier) each,
    running (session caches on, as by default)."""
    pairs = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            links, mailer = app_on(unreachable, poll=timedelta(milliseconds=50))
            await stack.enter_async_context(links)
            pairs.append((links, mailer))
        yield pairs[0], pairs[1]


async def test_a_session_revoked_in_a_process_that_cannot_reach_this_one_stops_working_here(
    two_processes: tuple[tuple[MagicLinks, MemoryMailer], tuple[MagicLinks, MemoryMailer]],
) -> None:
    (here, mailer), (there, _) = two_processes
    client = await sign_up(here, mailer, "ann@example.org")
    [session] = (await here.client_state(client)).sessions
    token = (await here.activate_session(client, session.id))[1]
    await anyio.wait_all_tasks_blocked()  # the activation's own announcement is heard first
    assert await here.authenticate(token) is not None  # read here (a cache would keep it)
    await there.revoke_sessions(session.user_id)
    assert await here.authenticate(token) is None  # at once: no cache served it


async def test_a_click_in_a_process_that_cannot_reach_this_one_is_seen_by_polling(
    two_processes: tuple[tuple[MagicLinks, MemoryMailer], tuple[MagicLinks, MemoryMailer]],
) -> None:
    (here, mailer), (there, _) = two_processes

    async def click(token: str) -> None:
        await there.verify_link(token, None)

    # a wait far longer than the bound: only polling can end it in time
    status = await sign_in_waited_on(here, mailer, timeout=timedelta(minutes=5), click=click)
    assert status is SignInStatus.COMPLETE


async def sign_in_waited_on(
    links: MagicLinks,
    mailer: MemoryMailer,
    *,
    timeout: timedelta,
    click: Callable[[str], Awaitable[None]],
) -> SignInStatus:
    """A sign-in of a signed-up user started on ``links`` and waited on there for up to
    ``timeout``, its link opened by ``click`` once the waiter has read it pending (``links``'
    notifier is a :class:`WatchedNotifier`); the sign-in's status when the wait ended, which
    must be within ``BOUND``."""
    await sign_up(links, mailer, "ann@example.org")
    client, _ = await links.create_client()
    attempt = await links.create_sign_in(client, "ann@example.org")
    await links.prepare_first_factor(client, attempt.id, redirect_url="/home")
    token = last_token(mailer, "ann@example.org")
    notifier = links.notifier
    assert isinstance(notifier, WatchedNotifier)
    results = []

    async def wait() -> None:
        results.append(await links.wait_for_sign_in(client, attempt.id, timeout=timeout))

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await notifier.until_waiting()
            await click(token)
    [result] = results
    return result.status


async def test_a_socket_left_by_a_dead_process_is_removed_by_the_next_publish(
    short_dir: Path,
) -> None:
    database = short_dir / "app.db"
    directory = sockets_dir(database)
    directory.mkdir(mode=0o700)
    dead = directory / "0123456789abcdef.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bound.bind(str(dead))
    bound.close()  # the process ended without unlinking it (killed)
    notifier, other = SQLiteNotifier(database), SQLiteNotifier(database)
    async with notifier, other, other.subscribe("magiclink:sign_in:x") as subscription:
        await notifier.publish("magiclink:sign_in:x")
        with anyio.fail_after(BOUND):
            await subscription.wait()  # the live one still heard it
    assert not dead.exists()
    assert list(directory.iterdir()) == []  # and each live one removed its own on leaving


@pytest.mark.parametrize("depth", ["short", pytest.param("deep", marks=needs_proc_fd)])
async def test_a_process_that_reads_too_slowly_is_resynced_and_misses_nothing(
    short_dir: Path, depth: str
) -> None:
    # the kernel queues only a few datagrams per socket (10 by default on Linux): a burst
    # published before the other process reads must still reach every one of its waiters
    database = deep(short_dir) if depth == "deep" else short_dir / "app.db"
    publisher, slow = SQLiteNotifier(database), SQLiteNotifier(database)
    channels = [f"magiclink:sign_in:{n}" for n in range(200)]
    async with publisher, slow, anyio.create_task_group() as group:
        woken: set[str] = set()
        all_woken = anyio.Event()
        subscribed = 0
        every_one_subscribed = anyio.Event()

        async def wait_on(channel: str) -> None:
            nonlocal subscribed
            async with slow.subscribe(channel) as subscription:
                subscribed += 1
                if subscribed == len(channels):
                    every_one_subscribed.set()
                await subscription.wait()
            woken.add(channel)
            if len(woken) == len(channels):
                all_woken.set()

        for channel in channels:
            group.start_soon(wait_on, channel)
        await every_one_subscribed.wait()
        for channel in channels:  # no await in between that lets the other side read
            await publisher.publish(channel)
        assert publisher._owed  # some did not fit: a resync is owed
        with anyio.fail_after(BOUND):
            await all_woken.wait()
        assert not publisher._owed


async def test_a_sockets_directory_others_may_write_to_is_refused_until_it_is_fixed(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = short_dir / "app.db"
    directory = sockets_dir(database)
    directory.mkdir()
    os.chmod(directory, 0o777)  # anyone could bind there and hear which sessions change
    notifier = SQLiteNotifier(database, **QUICK)
    with caplog.at_level(logging.WARNING, logger="magiclink.storage"):
        async with notifier:
            assert not notifier.healthy  # down: waiters poll, the session cache is off
            assert list(directory.iterdir()) == []
            async with notifier.subscribe("magiclink:sign_in:x") as subscription:
                os.chmod(directory, 0o700)
                with anyio.fail_after(BOUND):
                    await subscription.wait()  # woken when it listens again: re-read once
            assert notifier.healthy
    assert "writable by nobody else" in caplog.text


# -- two processes --------------------------------------------------------------------------

_OTHER_PROCESS = """
import sys

import anyio

sys.path.insert(0, sys.argv[1])
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import SQLiteStorage
from tests.core._flows import make_links


async def main(database: str, action: str, argument: str) -> None:
    links = make_links(SQLiteStorage(database), MemoryMailer())
    async with links:  # as an app's lifespan does
        if action == "click":
            await links.verify_link(argument, None)
        else:
            await links.revoke_sessions(argument)


anyio.run(main, *sys.argv[2:])
"""


_ROOT = str(Path(__file__).resolve().parents[2])


async def _in_another_process(database: Path, action: str, argument: str) -> None:
    root = _ROOT
    with anyio.fail_after(BOUND):
        done = await anyio.run_process(
            [sys.executable, "-c", _OTHER_PROCESS, root, str(database), action, argument],
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()


@pytest.fixture
async def this_process(
    short_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[MagicLinks, MemoryMailer, Path]]:
    """An app process on a SQLite file, its notifier running, polling once a minute (so only a
    wake-up from the other process can end a wait before its 10-second timeout). Parametrized
    ``"deep"`` (indirectly), the file lies too deep for a socket path beside it."""
    if getattr(request, "param", "short") == "deep":
        if not HAS_PROC_FD:
            pytest.skip("no /proc/self/fd (Linux) to reach a deep socket")
        database = deep(short_dir)
    else:
        database = short_dir / "app.db"
    links, mailer = app_on(database, poll=timedelta(minutes=1))
    async with links:
        yield links, mailer, database


async def test_a_click_in_another_process_wakes_the_waiter_in_this_one(
    this_process: tuple[MagicLinks, MemoryMailer, Path],
) -> None:
    links, mailer, database = this_process

    async def click(token: str) -> None:
        await _in_another_process(database, "click", token)

    status = await sign_in_waited_on(links, mailer, timeout=timedelta(seconds=10), click=click)
    assert status is SignInStatus.COMPLETE  # woken, not timed out


@pytest.mark.parametrize("this_process", ["short", "deep"], indirect=True)
async def test_a_session_revoked_in_another_process_stops_working_here_at_once(
    this_process: tuple[MagicLinks, MemoryMailer, Path],
) -> None:
    links, mailer, database = this_process
    client = await sign_up(links, mailer, "ann@example.org")
    [session] = (await links.client_state(client)).sessions
    token = (await links.activate_session(client, session.id))[1]
    assert await links.authenticate(token) is not None  # now served from this process's cache
    channel = session_channel(shard_of(session.id))
    with anyio.fail_after(BOUND):
        async with links.notifier.subscribe(channel) as subscription:
            await _in_another_process(database, "revoke", session.user_id)
            await subscription.wait()  # this process heard of it ...
            await anyio.wait_all_tasks_blocked()  # ... and its cache dropped the session
    assert await links.authenticate(token) is None
