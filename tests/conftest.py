"""Fixtures every test package uses; shared constants and helpers are in ``tests/support.py``."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# No per-example deadline: timings belong in benchmarks/, not in assertions. Hypothesis's default
# (200 ms) failed a property test whose first example took 412 ms on a 2-core machine busy with
# Chromium tests beside it. A hang is still caught by pytest-timeout.
settings.register_profile("magiclink", deadline=None)
settings.load_profile("magiclink")

MAX_WORKERS = 4
"""At most this many test processes (``-n auto`` in pyproject's ``addopts``): each runs its own
Chromium, SMTP servers and connection pools, and all of them share one PostgreSQL, which takes
100 connections by default."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may run on, at most :data:`MAX_WORKERS`.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it, as in pytest-xdist, and ``-n 0`` runs the
    tests in this one process (for a debugger, or a few tests: starting the workers costs
    about 5 s on a 2-core machine)."""
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if chosen.isdigit():
        return int(chosen)
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
