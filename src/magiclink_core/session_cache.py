"""A short-lived, in-process cache of live sessions, so the session check of a signed-in request
needs no storage read.

What it may serve, and for how long (also in ``docs/storage.md``):

- only a session read from storage by this process's session check, live when read, under the
  keyed digest of the token that found it, for at most ``Settings.session_cache_ttl``; every hit
  is judged again as of now (expired or idle: not served) and one due for its idle-timeout touch
  is read from storage again and touched there;
- only while ``MagicLinks`` runs (``async with links:``, which the middleware enters for the app's
  lifespan) and its notifier is :attr:`~magiclink_core.ports.Notifier.healthy`: a notifier that is
  down (an outage, or never entered) turns the cache off and empties it;
- never past a change: every write of a session through the service (signing out, revoking,
  collecting, the idle touch, the primary address it carries) empties the session's shard of the
  cache here first and then publishes on that shard's channel, so every other instance on the
  notifier drops it when it hears; a read that raced with any such drop is not kept.

Invalidations go to one of :data:`SHARDS` channels (``magiclink:sessions:<n>``, by the session
id), each heard by one subscription of the cache: a change empties one sixteenth of the cache, not
all of it. A subscription is also woken whenever the notifier's health changes, so a reconnect
(which may have missed messages) empties the cache too.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from datetime import datetime, timedelta

import anyio
from anyio.abc import TaskStatus

from .domain.models import Session
from .ports import Notifier

logger = logging.getLogger("magiclink")

SHARDS = 16
CHANNEL_PREFIX = "magiclink:sessions:"


def shard_of(session_id: str) -> int:
    """The shard (and channel) of a session: the same on every instance."""
    return zlib.crc32(session_id.encode()) % SHARDS


def session_channel(shard: int) -> str:
    """The notifier channel on which changes of the sessions of ``shard`` are announced."""
    return f"{CHANNEL_PREFIX}{shard}"


class _Entry:
    __slots__ = ("session", "shard", "until")

    def __init__(self, session: Session, shard: int, until: datetime) -> None:
        self.session = session
        self.shard = shard
        self.until = until


class SessionCache:
    """Live sessions by token digest, for at most ``ttl``, dropped when any instance changes
    them; serves only while :meth:`run` runs and the notifier is healthy.

    :param notifier: carries the invalidations (the ``MagicLinks``' own notifier).
    :param ttl: the longest an entry is served; zero turns the cache off.
    :param size: the most entries kept (the oldest go first).
    """

    def __init__(self, notifier: Notifier, *, ttl: timedelta, size: int) -> None:
        self._notifier = notifier
        self._ttl = ttl
        self._size = size
        self._entries: dict[str, _Entry] = {}
        self._shards: list[set[str]] = [set() for _ in range(SHARDS)]
        self._epoch = 0  # advanced by every drop: a read that began before one is not kept
        self._running = False
        self.enabled = ttl > timedelta(0) and size > 0

    @property
    def serving(self) -> bool:
        """Whether the cache may serve now (running, and the notifier healthy)."""
        if not self._running:
            return False
        if self._notifier.healthy:
            return True
        if self._entries:
            self._clear()
        return False

    @property
    def epoch(self) -> int:
        """Take it before reading storage; pass it to :meth:`put`."""
        return self._epoch

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: datetime) -> Session | None:
        """The cached session under ``key`` if still within its time; call only when
        :attr:`serving`."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.until:
            self._remove(key, entry)
            return None
        return entry.session

    def put(self, key: str, session: Session, now: datetime, epoch: int) -> None:
        """Keep ``session`` (read from storage after :attr:`epoch` was ``epoch``) under ``key``,
        unless anything was dropped since that read began."""
        if epoch != self._epoch or not self.enabled or not self.serving:
            return
        old = self._entries.get(key)
        if old is not None:
            self._remove(key, old)
        elif len(self._entries) >= self._size:
            oldest = next(iter(self._entries))
            self._remove(oldest, self._entries[oldest])
        shard = shard_of(session.id)
        self._entries[key] = _Entry(session, shard, now + self._ttl)
        self._shards[shard].add(key)

    def forget(self, session_ids: Iterable[str]) -> set[int]:
        """Drop the shards of ``session_ids`` here; return them (to announce to the others)."""
        shards = {shard_of(session_id) for session_id in session_ids}
        for shard in shards:
            self._drop(shard)
        return shards

    async def announce(self, shards: Iterable[int]) -> None:
        """Tell every instance to drop ``shards``. A lost announcement is logged, never raised:
        the other instances then serve their copy at most ``ttl`` longer."""
        for shard in shards:
            try:
                await self._notifier.publish(session_channel(shard))
            except Exception:
                logger.warning(
                    "could not announce a session change to other instances; their cached copy "
                    "lives at most session_cache_ttl",
                    exc_info=True,
                )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen for invalidations until cancelled; the cache serves only meanwhile. Returns
        (through ``task_status``) once every shard's subscription is open."""
        if not self.enabled:
            task_status.started()
            return
        try:
            async with anyio.create_task_group() as group:
                for shard in range(SHARDS):
                    await group.start(self._listen, shard)
                self._running = True
                task_status.started()
        finally:
            self._running = False
            self._clear()

    async def _listen(
        self, shard: int, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with self._notifier.subscribe(session_channel(shard)) as subscription:
            task_status.started()
            while True:
                await subscription.wait()  # a change announced, or the notifier's health moved
                self._drop(shard)

    def _drop(self, shard: int) -> None:
        self._epoch += 1
        keys, self._shards[shard] = self._shards[shard], set()
        for key in keys:
            self._entries.pop(key, None)

    def _remove(self, key: str, entry: _Entry) -> None:
        del self._entries[key]
        self._shards[entry.shard].discard(key)

    def _clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        for keys in self._shards:
            keys.clear()


__all__ = ["CHANNEL_PREFIX", "SHARDS", "SessionCache", "session_channel", "shard_of"]
