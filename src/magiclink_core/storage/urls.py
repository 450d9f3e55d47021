"""Storage from a URL, for configuration files and ``magiclink migrate --database URL``.

=====================================  =============================================
``memory://``                          :class:`~.memory.MemoryStorage` (forgets on exit)
``sqlite:///relative/path.db``         :class:`~.sqlite.SQLiteStorage` (three slashes: relative)
``sqlite:////absolute/path.db``        (four slashes: absolute; ``sqlite:///:memory:`` too)
``postgresql://user@host:5432/db``     :class:`~.postgres.PostgresStorage`; ``?schema=name``
                                       puts the tables in that schema (``postgres://`` and
                                       ``postgresql+asyncpg://`` are accepted too)
``redis://host:6379/0``, ``rediss://`` :class:`~.redis.RedisStorage`; ``?prefix=app:`` sets the
                                       key prefix
=====================================  =============================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..ports import Migratable, Storage

_POSTGRES = ("postgresql", "postgres", "postgresql+asyncpg")
_REDIS = ("redis", "rediss", "unix")


def _pop_query(url: str, name: str) -> tuple[str, str | None]:
    """``url`` without its query parameter ``name``, and that parameter's value."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    value = next((v for k, v in query if k == name), None)
    rest = urlencode([(k, v) for k, v in query if k != name])
    return urlunsplit(parts._replace(query=rest)), value


def from_url(url: str, **options: Any) -> Storage:
    """The storage a URL names (see the module's table); ``options`` go to its constructor.

    :raises ValueError: an unknown scheme.
    :raises ImportError: the backend's extra (``magiclink[sqlite]`` ...) is not installed.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from .memory import MemoryStorage

        return MemoryStorage()
    if scheme == "sqlite":
        from .sqlite import SQLiteStorage

        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path:
            raise ValueError("a SQLite URL names a file: sqlite:///path/to/magiclink.db")
        return SQLiteStorage(path.split("?", 1)[0], **options)
    if scheme in _POSTGRES:
        from .postgres import PostgresStorage

        dsn, schema = _pop_query(url, "schema")
        dsn = "postgresql" + dsn[len(scheme) :]
        if schema is not None:
            options.setdefault("schema", schema)
        return PostgresStorage(dsn, **options)
    if scheme in _REDIS:
        from .redis import RedisStorage

        plain, prefix = _pop_query(url, "prefix")
        if prefix is not None:
            options.setdefault("prefix", prefix)
        return RedisStorage(plain, **options)
    raise ValueError(
        f"unknown storage URL scheme {scheme!r}: use memory://, sqlite:///, postgresql:// "
        "or redis://"
    )


async def migrate_url(url: str) -> int:
    """Create or upgrade the schema of the storage at ``url`` and return its version (0 for
    backends without a schema: memory, Redis). For ``magiclink migrate --database URL``."""
    storage = from_url(url, **({"auto_migrate": False} if url.startswith("sqlite") else {}))
    try:
        return await storage.migrate() if isinstance(storage, Migratable) else 0
    finally:
        await storage.close()


__all__ = ["from_url", "migrate_url"]
