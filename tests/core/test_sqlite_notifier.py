"""Wake-ups between the processes sharing one SQLite file (``SQLiteNotifier``): the notifier
contract, what it does with a dead process's socket, a slow reader and an unsafe directory, and
two real processes, one clicking or revoking while the other waits or serves from its cache."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
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
from magiclink_core.storage import SQLiteStorage
from magiclink_core.storage.sqlite_notifier import SQLiteNotifier, sockets_dir, supported
from magiclink_core.testing import NotifierContract
from tests.support import WatchedNotifier

from ._flows import last_token, make_links, sign_up

pytestmark = pytest.mark.anyio

BOUND = 20  # seconds: only to catch a hang

if supported("/tmp/x.db") is not None:  # pragma: no cover - Unix datagram sockets are missing
    pytest.skip("no Unix datagram sockets here", allow_module_level=True)


QUICK = {"keepalive": 0.05, "backoff": Backoff(first=0.01, cap=0.05)}


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
    async def notifiers(self, tmp_path: Path) -> AsyncIterator[tuple[Notifier, Notifier]]:
        database = tmp_path / "shared.db"
        yield SQLiteNotifier(database, **QUICK), SQLiteNotifier(database, **QUICK)

    @pytest.fixture
    def outage(self, notifiers: tuple[Notifier, Notifier]) -> SocketRemoved:
        here, _ = notifiers
        assert isinstance(here, SQLiteNotifier)
        return SocketRemoved(here)


async def test_the_storage_of_a_file_wakes_other_processes_and_one_in_memory_does_not(
    tmp_path: Path,
) -> None:
    on_file, in_memory = SQLiteStorage(tmp_path / "app.db"), SQLiteStorage(":memory:")
    assert isinstance(on_file.notifier(), SQLiteNotifier)
    assert on_file.notifier() is on_file.notifier()  # one per storage
    assert type(in_memory.notifier()) is LocalNotifier


async def test_a_path_too_long_for_a_socket_falls_back_to_this_process_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    storage = SQLiteStorage(deep / "app.db")
    with caplog.at_level(logging.WARNING, logger="magiclink.storage"):
        assert type(storage.notifier()) is LocalNotifier
    assert "will not wake each other" in caplog.text and "longer than" in caplog.text
    with pytest.raises(ValueError, match="longer than"):
        SQLiteNotifier(deep / "app.db")


async def test_a_socket_left_by_a_dead_process_is_removed_by_the_next_publish(
    tmp_path: Path,
) -> None:
    database = tmp_path / "app.db"
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


async def test_a_process_that_reads_too_slowly_is_resynced_and_misses_nothing(
    tmp_path: Path,
) -> None:
    # the kernel queues only a few datagrams per socket (10 by default on Linux): a burst
    # published before the other process reads must still reach every one of its waiters
    database = tmp_path / "app.db"
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
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "app.db"
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
async def this_process(tmp_path: Path) -> AsyncIterator[tuple[MagicLinks, MemoryMailer, Path]]:
    """An app process on a SQLite file, its notifier running, polling once a minute (so only a
    wake-up from the other process can end a wait before its 10-second timeout)."""
    database = tmp_path / "app.db"
    storage, mailer = SQLiteStorage(database), MemoryMailer()
    links = make_links(
        storage,
        mailer,
        WatchedNotifier(storage.notifier()),
        wait_poll_interval=timedelta(minutes=1),
    )
    async with links:
        yield links, mailer, database


async def test_a_click_in_another_process_wakes_the_waiter_in_this_one(
    this_process: tuple[MagicLinks, MemoryMailer, Path],
) -> None:
    links, mailer, database = this_process
    await sign_up(links, mailer, "ann@example.org")
    client, _ = await links.create_client()
    attempt = await links.create_sign_in(client, "ann@example.org")
    await links.prepare_first_factor(client, attempt.id, redirect_url="/home")
    token = last_token(mailer, "ann@example.org")
    notifier = links.notifier
    assert isinstance(notifier, WatchedNotifier)
    results = []

    async def wait() -> None:
        wait_for = links.wait_for_sign_in(client, attempt.id, timeout=timedelta(seconds=10))
        results.append(await wait_for)

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await notifier.until_waiting()
            await _in_another_process(database, "click", token)
    [result] = results
    assert result.status is SignInStatus.COMPLETE  # woken, not timed out


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
