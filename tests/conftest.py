"""Fixtures every test package uses; shared constants and helpers are in ``tests/support.py``."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
