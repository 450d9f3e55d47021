"""Fixtures every test package uses; shared constants and helpers are in ``tests/support.py``."""

from __future__ import annotations

import pytest
from hypothesis import settings

# No per-example deadline: timings belong in benchmarks/, not in assertions. Hypothesis's default
# (200 ms) failed a property test whose first example took 412 ms on a 2-core machine busy with
# Chromium tests beside it. A hang is still caught by pytest-timeout.
settings.register_profile("magiclink", deadline=None)
settings.load_profile("magiclink")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
