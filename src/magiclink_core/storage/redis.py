"""Redis storage (``magiclink[redis]``), with redis-py's asyncio client.

Keys, under a configurable ``prefix`` (default ``magiclink:``), per record table ``t``:

- ``{prefix}{t}:{id}``: the record as JSON, expiring at its ``purge_after`` (so expired records
  vanish by themselves, a ``purge_grace`` after their links expired: a late click still reads
  ``expired``);
- ``{prefix}{t}:u:{field}:{value}``: the id holding a unique value, expiring with its record;
- ``{prefix}{t}:l:{field}:{value}``: a sorted set of the ids with a list-field value, scored by
  ``created_at`` (ties by id), so ``list`` is oldest first;
- ``{prefix}{t}:purge``: ids scored by ``purge_after``; ``{prefix}{t}:meta``: each id's index
  values, so that :meth:`RedisStorage.purge` can clean the index entries of records Redis has
  already expired;
- ``{prefix}counter:{key}``: a rate-limit counter (a hash of count and reset time).

:meth:`RedisStorage.apply` is one Lua script: it checks every version and unique value first and
writes only if all hold, and Redis runs a script without interleaving, so it is all-or-nothing.
Record TTLs are ``purge_after - updated_at`` (the writer's clock), applied when written. Every
call is one round trip: ``find`` (index, then record) and ``list`` (sorted set, then records) are
small scripts too.

The client's pool holds ``max_connections``; a burst of calls beyond it queues for a connection,
up to ``pool_timeout`` seconds, then fails with
:class:`~magiclink_core.domain.errors.StorageUnavailableError`.

A Redis script names keys it computes from record values, so this adapter is for a single Redis
server (with replicas or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ..domain.errors import StorageUnavailableError
from ..domain.models import Record
from ..ports import Change, Delete, Insert, R, WriteConflict
from . import _records
from ._connections import ConnectionLimits
from ._redis_client import (
    UNAVAILABLE,
    NoScriptError,
    RedisClient,
    RedisScript,
    make_client,
    unavailable,
)
from ._settle import settling, timed_out
from .redis_notifier import RedisNotifier

_T = TypeVar("_T")

_APPLY = """
local prefix = ARGV[1]
local ops = cjson.decode(ARGV[2])
local staged, order = {}, {}

local function record_key(t, id) return prefix .. t .. ':' .. id end
local function unique_key(t, f, v) return prefix .. t .. ':u:' .. f .. ':' .. v end
local function list_key(t, f, v) return prefix .. t .. ':l:' .. f .. ':' .. v end

local function load(op)
  local key = record_key(op.t, op.id)
  local s = staged[key]
  if s then return s end
  local doc = redis.call('GET', key)
  s = {t = op.t, id = op.id, kind = op.kind, exists = false, pre = false}
  if doc then
    s.exists = true
    s.version = cjson.decode(doc).version
    local meta = redis.call('HGET', prefix .. op.t .. ':meta', op.id)
    if meta then s.pre = cjson.decode(meta) end
  end
  staged[key] = s
  table.insert(order, key)
  return s
end

-- check every condition first
for _, op in ipairs(ops) do
  local s = load(op)
  if op.op == 'insert' then
    if s.exists then return {'conflict', op.kind .. ' ' .. op.id .. ' exists', ''} end
  elseif (not s.exists) or s.version ~= op.expect then
    return {'conflict', op.kind .. ' ' .. op.id .. ' changed or is gone', ''}
  end
  s.exists = op.op ~= 'delete'
  s.version = op.version
  s.final = op
end

local claimed = {}
for _, key in ipairs(order) do
  local s = staged[key]
  if s.exists then
    for field, value in pairs(s.final.u) do
      local taken = {'conflict', s.kind .. '.' .. field .. ' is taken', field}
      local mark = s.t .. '\\0' .. field .. '\\0' .. value
      if claimed[mark] and claimed[mark] ~= s.id then return taken end
      claimed[mark] = s.id
      local owner = redis.call('GET', unique_key(s.t, field, value))
      if owner and owner ~= s.id and redis.call('EXISTS', record_key(s.t, owner)) == 1 then
        local o = staged[record_key(s.t, owner)]
        local moving = o ~= nil and ((not o.exists) or o.final.u[field] ~= value)
        if not moving then return taken end
      end
    end
  end
end

-- then write everything
for _, key in ipairs(order) do
  local s = staged[key]
  local t, id = s.t, s.id
  if s.pre then
    for field, value in pairs(s.pre.u) do
      local uk = unique_key(t, field, value)
      if redis.call('GET', uk) == id then redis.call('DEL', uk) end
    end
    for field, value in pairs(s.pre.l) do redis.call('ZREM', list_key(t, field, value), id) end
  end
  redis.call('ZREM', prefix .. t .. ':purge', id)
  if not s.exists then
    redis.call('DEL', key)
    redis.call('HDEL', prefix .. t .. ':meta', id)
  else
    local op = s.final
    redis.call('SET', key, op.doc)
    if op.ttl then
      redis.call('PEXPIRE', key, op.ttl)
      redis.call('ZADD', prefix .. t .. ':purge', op.purge, id)
    end
    for field, value in pairs(op.u) do
      local uk = unique_key(t, field, value)
      redis.call('SET', uk, id)
      if op.ttl then redis.call('PEXPIRE', uk, op.ttl) end
    end
    for field, value in pairs(op.l) do
      redis.call('ZADD', list_key(t, field, value), op.score, id)
    end
    redis.call('HSET', prefix .. t .. ':meta', id, cjson.encode({u = op.u, l = op.l}))
  end
end
return {'ok', '', ''}
"""

_PURGE = """
local prefix, t, now, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', prefix .. t .. ':purge', '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local meta = redis.call('HGET', prefix .. t .. ':meta', id)
  if meta then
    meta = cjson.decode(meta)
    for field, value in pairs(meta.u) do
      local uk = prefix .. t .. ':u:' .. field .. ':' .. value
      if redis.call('GET', uk) == id then redis.call('DEL', uk) end
    end
    for field, value in pairs(meta.l) do
      redis.call('ZREM', prefix .. t .. ':l:' .. field .. ':' .. value, id)
    end
  end
  redis.call('DEL', prefix .. t .. ':' .. id)
  redis.call('HDEL', prefix .. t .. ':meta', id)
  redis.call('ZREM', prefix .. t .. ':purge', id)
end
return #ids
"""

# the record a unique value points at: the index entry, then the record, in one round trip
_FIND = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('GET', ARGV[1] .. id)
"""

# the records of a list-field value, oldest first (MGET in slices: Lua's unpack is bounded)
_LIST = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local docs = {}
for first = 1, #ids, 500 do
  local keys = {}
  for i = first, math.min(first + 499, #ids) do keys[#keys + 1] = ARGV[1] .. ids[i] end
  for _, doc in ipairs(redis.call('MGET', unpack(keys))) do
    if doc then docs[#docs + 1] = doc end
  end
end
return docs
"""

_INCREMENT = """
local reset = redis.call('HGET', KEYS[1], 'reset')
local amount = tonumber(ARGV[4])
if (not reset) or tonumber(reset) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'count', amount, 'reset', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {amount, ARGV[2]}
end
return {redis.call('HINCRBY', KEYS[1], 'count', amount), reset}
"""


def _micros(value: datetime) -> int:
    return round(value.timestamp() * 1_000_000)


def _from_micros(value: str | int) -> datetime:
    micros = int(value)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _operation(change: Change) -> dict[str, object]:
    """What the apply script needs to know of one change (no nulls: Lua reads them as true)."""
    if isinstance(change, Delete):
        kind: type[Record] = change.kind
        return {
            "op": "delete",
            "t": kind.table,
            "kind": kind.__name__,
            "id": change.id,
            "expect": change.version,
            "version": change.version,
        }
    record = change.record
    kind = type(record)
    op: dict[str, object] = {
        "op": "insert" if isinstance(change, Insert) else "update",
        "t": kind.table,
        "kind": kind.__name__,
        "id": record.id,
        "version": record.version,
        "expect": record.version - 1,
        "doc": record.model_dump_json(),
        "u": {f: v for f in kind.unique_fields if (v := getattr(record, f)) is not None},
        "l": {f: v for f in kind.list_fields if (v := getattr(record, f)) is not None},
        "score": str(_micros(record.created_at)),
    }
    if record.purge_after is not None:
        op["purge"] = str(_micros(record.purge_after))
        ttl = record.purge_after - record.updated_at
        op["ttl"] = max(1, int(ttl.total_seconds() * 1000))
    return op


class RedisStorage(ConnectionLimits):
    """Storage in Redis.

    :param url: a Redis URL (``redis://host:6379/0``, ``rediss://`` for TLS); or
    :param client: a ``redis.asyncio.Redis`` you made, with ``decode_responses=True``
        (:meth:`close` then leaves it open, and its pool is yours to size).
    :param prefix: put before every key, so that several apps (or tests) share one database.
    :param connect_timeout: seconds to wait for a connection before failing.
    :param command_timeout: seconds a command may take before failing.
    :param max_connections: the size of the connection pool (a :meth:`notifier` keeps one).
    :param pool_timeout: seconds a call waits for a free connection when all are busy, before
        failing with :class:`~magiclink_core.domain.errors.StorageUnavailableError`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: RedisClient | None = None,
        prefix: str = "magiclink:",
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        max_connections: int = 50,
        pool_timeout: float = 5.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("give RedisStorage a url or a client, not both")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        super().__init__(connect_timeout, command_timeout, max_connections)
        self.url = url
        self.prefix = prefix
        self.pool_timeout = pool_timeout
        self._owns_client = client is None
        self._client: RedisClient = client or make_client(
            url or "",
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
        )
        self._apply = self._client.register_script(_APPLY)
        self._find = self._client.register_script(_FIND)
        self._list = self._client.register_script(_LIST)
        self._purge = self._client.register_script(_PURGE)
        self._increment = self._client.register_script(_INCREMENT)
        self._notifier: RedisNotifier | None = None

    def __repr__(self) -> str:
        return f"RedisStorage(prefix={self.prefix!r})"

    async def migrate(self) -> int:
        """Nothing to do: Redis keys need no schema. Present so every adapter can be migrated
        the same way; returns 0."""
        return 0

    def notifier(self) -> RedisNotifier:
        """A pub/sub notifier on this storage's Redis (one per storage)."""
        if self._notifier is None:
            self._notifier = RedisNotifier(
                client=self._client,
                channel=f"{self.prefix}notify",
                connect_timeout=self.connect_timeout,
            )
        return self._notifier

    async def close(self) -> None:
        """Close the notifier handed out and the client (if this storage made it)."""
        if self._notifier is not None:
            await self._notifier.close()
            self._notifier = None
        if self._owns_client:
            await self._client.aclose()

    async def _call(self, pending: Awaitable[_T]) -> _T:
        try:
            return await pending
        except UNAVAILABLE as exc:
            raise unavailable(exc) from exc

    async def _run(self, script: RedisScript, keys: list[str], args: list[str | int]) -> object:
        """``script`` by EVALSHA, loaded again if the server has lost it (a restart, SCRIPT
        FLUSH): what calling the registered script does, without the import and the pipeline
        test it makes on every call (3 % of a consume's instructions), in one coroutine."""
        try:
            try:
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                return await script(keys=keys, args=args)
        except UNAVAILABLE as exc:
            raise unavailable(exc) from exc

    def _key(self, kind: type[Record], id: str) -> str:
        return f"{self.prefix}{kind.table}:{id}"

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, kind: type[R], id: str) -> R | None:
        """The record of ``kind`` with ``id``, or None."""
        doc = await self._call(self._client.get(self._key(kind, id)))
        return None if doc is None else kind.model_validate_json(doc)

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        """The record whose unique ``field`` equals ``value``, or None."""
        _records.check_field(kind, field, kind.unique_fields, "unique")
        doc = await self._run(
            self._find,
            keys=[f"{self.prefix}{kind.table}:u:{field}:{value}"],
            args=[f"{self.prefix}{kind.table}:"],
        )
        if doc is None:
            return None
        record = kind.model_validate_json(_text(doc))
        # an index entry outlives its record by a moment when Redis expires them one by one
        return record if getattr(record, field) == value else None

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        """Records whose ``field`` equals ``value``, oldest first (ties by id)."""
        _records.check_field(kind, field, kind.list_fields, "list")
        docs = await self._run(
            self._list,
            keys=[f"{self.prefix}{kind.table}:l:{field}:{value}"],
            args=[f"{self.prefix}{kind.table}:"],
        )
        records = [kind.model_validate_json(_text(doc)) for doc in _items(docs, None)]
        return [r for r in records if getattr(r, field) == value]

    # -- writes --------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        """Check and write ``changes`` in one Lua script, or raise :class:`WriteConflict`."""
        if not changes:
            return
        payload = json.dumps([_operation(change) for change in changes], separators=(",", ":"))
        # shielded (a command_timeout bounds it): once sent, the script runs whole on the
        # server, so wait for its answer; a cancelled caller then leaves a settled outcome. The
        # caller's deadline (the request's storage_timeout) still holds, see _settle.py
        with settling() as scope:
            reply = await self._run(self._apply, keys=[], args=[self.prefix, payload])
        late = timed_out(scope)
        if late is not None:
            raise unavailable(late)
        outcome, message, field = (_text(item) for item in _items(reply, 3))
        if outcome != "ok":
            raise WriteConflict(message, unique_field=field or None)

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        """One script: a counter past its reset time starts again from ``amount``. The key
        expires a ``window`` after it (re)starts. A read (``amount=0``) is one ``HMGET``."""
        if not amount:
            held, until = await self._call(
                self._client.hmget(f"{self.prefix}counter:{key}", ["count", "reset"])
            )
            stored = None if until is None else (_integer(held), _from_micros(_integer(until)))
            return _records.counter_as_read(stored, window=window, now=now)
        reset_at = now + window
        reply = await self._run(
            self._increment,
            keys=[f"{self.prefix}counter:{key}"],
            args=[
                str(_micros(now)),
                str(_micros(reset_at)),
                max(1, int(window.total_seconds() * 1000)),
                amount,
            ],
        )
        count, reset = _items(reply, 2)
        return _integer(count), _from_micros(_integer(reset))

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        """Remove up to ``limit`` records whose ``purge_after`` has passed, with their index
        entries, one table at a time; records Redis already expired by TTL count as removed
        here, when their index entries go."""
        removed = 0
        for table in _records.kinds_by_table():
            if removed >= limit:
                break
            removed += _integer(
                await self._run(
                    self._purge,
                    keys=[],
                    args=[self.prefix, table, str(_micros(now)), limit - removed],
                )
            )
        return removed


# -- script replies: their shape is the script's, checked here rather than trusted -----------


def _items(reply: object, count: int | None) -> list[object]:
    if isinstance(reply, list) and (count is None or len(reply) == count):
        return list(reply)
    raise _odd_reply(reply)


def _text(reply: object) -> str:
    if isinstance(reply, str):
        return reply
    raise _odd_reply(reply)


def _integer(reply: object) -> int:
    if isinstance(reply, int) or (isinstance(reply, str) and reply.isdigit()):
        return int(reply)
    raise _odd_reply(reply)


def _odd_reply(reply: object) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"Redis: unexpected script reply {reply!r:.80}")


__all__ = ["RedisStorage"]
