"""Storage adapters. The SQL and Redis ones need their extras, imported only when used:
``magiclink[sqlite]``, ``magiclink[postgres]``, ``magiclink[redis]``. ``from_url`` picks one
from a URL (``sqlite:///magiclink.db``, ``postgresql://...``, ``redis://...``); see
``docs/storage.md``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .memory import MemoryNotifier as MemoryNotifier
from .memory import MemoryStorage as MemoryStorage

if TYPE_CHECKING:
    from .postgres import PostgresStorage as PostgresStorage
    from .postgres_notifier import PostgresNotifier as PostgresNotifier
    from .redis import RedisStorage as RedisStorage
    from .redis_notifier import RedisNotifier as RedisNotifier
    from .sqlite import SQLiteStorage as SQLiteStorage
    from .sqlite_notifier import SQLiteNotifier as SQLiteNotifier
    from .urls import from_url as from_url
    from .urls import migrate_url as migrate_url

__all__ = [
    "MemoryNotifier",
    "MemoryStorage",
    "PostgresNotifier",
    "PostgresStorage",
    "RedisNotifier",
    "RedisStorage",
    "SQLiteNotifier",
    "SQLiteStorage",
    "from_url",
    "migrate_url",
]

_LAZY = {
    "SQLiteStorage": ".sqlite",
    "SQLiteNotifier": ".sqlite_notifier",
    "PostgresStorage": ".postgres",
    "PostgresNotifier": ".postgres_notifier",
    "RedisStorage": ".redis",
    "RedisNotifier": ".redis_notifier",
    "from_url": ".urls",
    "migrate_url": ".urls",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
