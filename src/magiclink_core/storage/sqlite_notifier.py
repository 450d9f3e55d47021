"""Wake-ups between the processes that share one SQLite file: Unix datagram sockets.

SQLite has no way to tell another process that a row changed (no ``LISTEN``, no pub/sub), so
each process that runs a :class:`SQLiteNotifier` binds a datagram socket of its own in a
directory beside the database (``<database>-notify/``, mode 0700, like SQLite's own ``-wal``
and ``-shm`` files). A publish wakes this process's subscribers, then sends the channel's name,
as one datagram, to every other socket in that directory. Each process wakes its subscribers of
that channel, and reads storage itself: nothing of a record travels, only which attempt or which
sessions changed. A socket's path holds about 100 bytes: for a database deeper than that, each
process holds the directory open and names its sockets through ``/proc/self/fd`` (Linux).

A socket left by a process that died is found by the next publish (the kernel refuses the
datagram: nobody reads there) and removed. A datagram is never half-delivered, but the kernel
queues only a few for a socket (``net.unix.max_dgram_qlen``, 10 by default on Linux): when a
process has not read its queue, the messages that do not fit are not sent; that process is owed
a *resync* instead, sent once it has room (tried after 20 ms, then less and less often, at least
once a second), on which it wakes every subscriber once, as after a reconnect (each waiter
re-reads, the session cache empties). So a burst costs the slow process one read per waiter,
never a change it does not hear of.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import anyio

from ..local_notifier import LocalNotifier
from ..shared_notifier import Backoff, SharedNotifier

logger = logging.getLogger("magiclink.storage")

SUFFIX = ".sock"

RESYNC = b"*"
"""The message of a resync (no channel's name: they all start with ``magiclink:``)."""

_RESYNC_RETRY = (0.02, 1.0)
"""Seconds between tries to send the resyncs owed, while any are (the listener's loop): the
first, doubling up to the last while a peer stays full (a process stopped in a debugger)."""

_MAX_PATH = 100
"""The longest socket path this binds or sends to as it is: ``sun_path`` holds 108 bytes on
Linux, 104 on macOS and the BSDs, with its terminating zero."""

_PROC_FD = "/proc/self/fd"
"""Where Linux names this process's open files: a sockets directory whose path is too long for a
socket is opened, and its sockets are reached as ``/proc/self/fd/<n>/<name>`` (about 45 bytes,
however deep the database lies)."""


def sockets_dir(database: str | os.PathLike[str]) -> Path:
    """Where the processes sharing ``database`` bind their sockets: beside the file."""
    path = Path(os.path.realpath(database))
    return path.with_name(path.name + "-notify")


def supported(database: str | os.PathLike[str]) -> str | None:
    """Why a :class:`SQLiteNotifier` cannot run for ``database`` here (no Unix datagram
    sockets on this platform, or a path too long for one where no ``/proc/self/fd`` gives a
    shorter name), or None when it can."""
    if os.name != "posix" or not hasattr(socket, "AF_UNIX"):
        return "this platform has no Unix sockets"
    directory = sockets_dir(database)
    if _too_long(directory) and not os.path.isdir(_PROC_FD):
        return f"the socket path {_longest(directory)!r} is longer than {_MAX_PATH} bytes"
    return None


def _longest(directory: Path) -> str:
    """The path of a socket in ``directory`` (their names are all this long)."""
    return os.path.join(directory, "0" * 16 + SUFFIX)


def _too_long(directory: Path) -> bool:
    """Whether a socket in ``directory`` has a path too long to bind or send to as it is."""
    return len(os.fsencode(_longest(directory))) > _MAX_PATH


class SQLiteNotifier(SharedNotifier):
    """Wake-ups across the processes of one machine that share a SQLite file.

    ``async with notifier:`` (or ``async with links:``, which the middleware enters for the
    app's lifespan) binds this process's socket and listens, supervised like the PostgreSQL and
    Redis notifiers: a socket that fails is bound again after a backoff, and waiters poll
    storage meanwhile (see :class:`~magiclink_core.shared_notifier.SharedNotifier`). A publish
    reaches every process listening when it is sent.

    :param database: the SQLite file the processes share.
    :param keepalive: seconds of silence after which the listener checks that its socket is
        still where the others look for it (a cleaner of temporary files may remove it): if
        not, it listens anew, and its waiters re-read once, as after a reconnect.
    :param backoff: the delays between attempts to listen again after a failure.
    :raises ValueError: the platform or the path cannot carry it (see :func:`supported`).
    """

    def __init__(
        self,
        database: str | os.PathLike[str],
        *,
        keepalive: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        why = supported(database)
        if why is not None:
            raise ValueError(f"SQLiteNotifier cannot run for {os.fspath(database)!r}: {why}")
        super().__init__(backoff=backoff)
        self.directory = sockets_dir(database)
        self.keepalive = keepalive
        # a directory too deep for a socket path is held open and its sockets reached through
        # /proc/self/fd (Linux); a path is still what names a socket everywhere else here
        self._deep = _too_long(self.directory)
        self._handle: int | None = None
        self._own: str | None = None  # this process's socket path while it listens
        self._sender: socket.socket | None = None
        self._owed: set[str] = set()  # peers whose queue was full: a resync is owed to them
        self._receiving: anyio.CancelScope | None = None  # the listener's wait for a message

    def __repr__(self) -> str:
        return f"SQLiteNotifier(directory={str(self.directory)!r})"

    @property
    def socket_path(self) -> str | None:
        """Where this process listens now (None while it does not)."""
        return self._own

    async def _listen(self, ready: Callable[[], None]) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        _check_private(self.directory)
        self._hold_directory()
        path = str(self.directory / (secrets.token_hex(8) + SUFFIX))
        listener = await anyio.create_unix_datagram_socket(
            local_path=self._address(path), local_mode=0o600
        )
        try:
            bound = os.stat(path).st_ino
            self._own = path
            ready()
            retry = _RESYNC_RETRY[0]
            while True:
                # while resyncs are owed, the wait is cut short to try them again
                silence = retry if self._owed else self.keepalive
                heard = False
                with anyio.CancelScope(deadline=anyio.current_time() + silence) as receiving:
                    self._receiving = receiving
                    payload, _ = await listener.receive()
                    self._heard(payload)
                    heard = True
                if self._owed:
                    self._resync()
                    retry = min(retry * 2, _RESYNC_RETRY[1]) if self._owed else _RESYNC_RETRY[0]
                if not heard and not _still_bound(path, bound):
                    raise ConnectionError(f"{path} was removed: nobody could reach this process")
        finally:
            self._own = self._receiving = None
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _heard(self, payload: bytes) -> None:
        if payload == RESYNC:
            self._local.deliver_all()
        else:
            self._deliver(payload.decode("utf-8", "replace"))

    async def publish(self, channel: str) -> None:
        """Wake the subscribers of ``channel`` in this process, then in every other process
        listening beside the same database."""
        self._deliver(channel)
        try:
            self._hold_directory()
            peers = os.scandir(self.directory)
        except FileNotFoundError:
            return  # no process has listened yet
        if self._owed:
            self._resync()
        payload = channel.encode()
        with peers:
            for entry in peers:
                path = entry.path
                if path == self._own or path in self._owed or not entry.name.endswith(SUFFIX):
                    continue
                if not self._send(payload, path):
                    self._owed.add(path)
                    if self._receiving is not None:
                        self._receiving.cancel()  # the listener retries it from now on

    def _resync(self) -> None:
        """Send the resyncs owed that now fit."""
        for peer in list(self._owed):
            if self._send(RESYNC, peer):
                self._owed.discard(peer)

    def _send(self, payload: bytes, peer: str) -> bool:
        """Send ``payload`` to ``peer``; False when its queue is full (nothing was sent)."""
        sender = self._sender
        if sender is None:
            sender = self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.setblocking(False)
        try:
            sender.sendto(payload, self._address(peer))
        except ConnectionRefusedError:
            # nobody reads there: the process that bound it is gone
            with contextlib.suppress(FileNotFoundError):
                os.unlink(peer)
        except FileNotFoundError:
            pass  # it stopped listening since the directory was read
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                raise
            logger.debug("%r: %s has no room; it is owed a resync", self, peer)
            return False
        return True

    def _hold_directory(self) -> None:
        """For a deep sockets directory: hold it open, as it is now (one removed and made anew,
        by a cleaner of temporary files, is opened anew). No-op for a short one.

        :raises FileNotFoundError: the directory does not exist.
        """
        if not self._deep:
            return
        now = os.stat(self.directory)
        if self._handle is not None:
            held = os.fstat(self._handle)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                return
            os.close(self._handle)
            self._handle = None
        self._handle = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)

    def _address(self, path: str) -> str:
        """What a socket call is given for the socket at ``path`` (in :attr:`directory`): the
        path itself, or for a deep directory its name through this process's handle on it."""
        if self._handle is None:
            return path
        return f"{_PROC_FD}/{self._handle}/{os.path.basename(path)}"

    async def close(self) -> None:
        await super().close()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None


class UnsharedNotifier(LocalNotifier):
    """The wake-ups of a SQLite file whose other processes this one cannot reach. It wakes this
    process's waiters as :class:`LocalNotifier` does, but is never :attr:`healthy`: a publish
    in another process never reaches it, which is what the port's ``healthy`` means. So
    waiters also poll storage, and the session cache does not serve (it could serve a session
    that another process ended)."""

    @property
    def healthy(self) -> bool:
        """Always False: other processes on the file are never heard."""
        return False


def _still_bound(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except FileNotFoundError:
        return False


def _check_private(directory: Path) -> None:
    """Refuse a sockets directory that another user owns or may write to: whoever can bind
    there could hear which attempts and sessions change."""
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{directory} is not a directory")
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(
            f"{directory} must belong to this user and be writable by nobody else (mode 0700)"
        )
