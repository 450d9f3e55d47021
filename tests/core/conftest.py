"""Fixtures for the core tests: a world over memory adapters (see ``_support.py``); for the tests
that need a real server, a fresh PostgreSQL schema or Redis key prefix, cleaned up afterwards
(see ``_services.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._services import postgres_schema, redis_prefix
from ._support import World, make_world


@pytest.fixture
def world() -> World:
    """MagicLinks over memory adapters on a fake clock, with the default test settings."""
    return make_world()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL schema (skips when PostgreSQL is not there)."""
    async with postgres_schema() as name:
        yield name


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A fresh Redis key prefix (skips when Redis is not there)."""
    async with redis_prefix() as value:
        yield value
