"""The redis-py driver, imported once for the Redis storage and notifier: how a client is made,
and which of its errors mean "Redis cannot be reached now"."""

from __future__ import annotations

from typing import Any

from ..domain.errors import StorageUnavailableError
from ._extras import missing_extra

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError as RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("RedisStorage", "redis", "redis") from exc

UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)


def unavailable(exc: BaseException) -> StorageUnavailableError:
    return StorageUnavailableError(long_message=f"Redis: {type(exc).__name__}: {exc}")


def make_client(url: str, *, connect_timeout: float, command_timeout: float) -> Any:
    """A client that fails fast: short timeouts, one immediate retry (which reconnects a
    connection the server dropped)."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1),
    )


__all__ = ["UNAVAILABLE", "RedisError", "make_client", "unavailable"]
