"""The redis-py driver, imported once for the Redis storage and notifier: how a client is made,
which of its errors mean "Redis cannot be reached now", and the part of its API the storage
calls, as protocols."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from ..domain.errors import StorageUnavailableError
from ._extras import missing_extra

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError as NoScriptError
    from redis.exceptions import RedisError as RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("RedisStorage", "redis", "redis") from exc

UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # also "No connection available." after the pool wait
    RedisTimeoutError,
    OSError,
    TimeoutError,
)


class RedisScript(Protocol):
    """A registered Lua script (``redis.asyncio`` ``AsyncScript``): EVALSHA, loading the script
    first if the server has not seen it. The reply's shape is the script's to decide."""

    sha: str

    def __call__(
        self, keys: Sequence[str] | None = None, args: Sequence[str | int] | None = None
    ) -> Awaitable[object]: ...


class RedisClient(Protocol):
    """A ``redis.asyncio.Redis`` with ``decode_responses=True``, as far as the storage uses it."""

    def get(self, name: str) -> Awaitable[str | bytes | None]: ...

    def hmget(self, name: str, keys: list[str]) -> Awaitable[list[str | bytes | None]]: ...

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> Awaitable[object]: ...

    def register_script(self, script: str) -> RedisScript: ...

    async def aclose(self) -> None: ...


def unavailable(exc: BaseException) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"Redis: {type(exc).__name__}: {exc}")


def make_client(
    url: str,
    *,
    connect_timeout: float,
    command_timeout: float,
    max_connections: int = 50,
    pool_timeout: float = 5.0,
) -> aioredis.Redis:
    """A client that fails fast: short timeouts, one immediate retry of a dropped connection
    (which reconnects it), none of a timeout (two tries would stack to twice the wait, and a
    script sent twice could run twice). Its pool holds at most ``max_connections``; a command that
    finds them all busy waits up to ``pool_timeout`` seconds for one, then fails with
    "No connection available." (a ConnectionError, so: unavailable), instead of failing at once
    as redis-py's default pool does past its size."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


__all__ = [
    "UNAVAILABLE",
    "NoScriptError",
    "RedisClient",
    "RedisError",
    "RedisScript",
    "make_client",
    "unavailable",
]
