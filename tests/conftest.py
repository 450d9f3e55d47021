"""Shared test settings.

``MAGICLINK_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a missing PostgreSQL, Redis or
Chromium from a skip into a failure; elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("MAGICLINK_REQUIRE_SERVICES") == "1"
POSTGRES_DSN = os.environ.get(
    "MAGICLINK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAGICLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "test-secret-" + "x" * 40


def service_missing(what: str, why: str) -> None:
    """Skip (or, when services are required, fail) a test whose server is not there."""
    message = f"{what} is not reachable ({why}); set it up or unset MAGICLINK_REQUIRE_SERVICES"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(f"{what} is not reachable here ({why})")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
