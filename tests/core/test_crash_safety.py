"""An app process SIGKILLed in the middle of sign-up and sign-in flows, on SQLite and on
PostgreSQL. Afterwards every attempt is untouched and resendable, or complete with its session;
no session exists without the consumed link of a completed attempt."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from magiclink_core import SignIn, SignInStatus, SignUp, SignUpStatus
from magiclink_core.domain.models import Client, EmailAddress, Link, Record, Session, User
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Storage
from magiclink_core.storage import PostgresStorage, SQLiteStorage
from magiclink_core.storage._sql import from_row
from tests.conftest import POSTGRES_DSN

from ._flows import make_links
from ._services import postgres_schema

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3  # kill, restart on the same database, kill again


def _kill_mid_run(args: list[str]) -> None:
    """Start the worker, wait until it is busy, then SIGKILL it at a random moment."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.core._crash_worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()  # "ready" once it has done some flows
        assert line.strip() == "ready", f"the worker did not start: {line!r}"
        time.sleep(random.uniform(0.05, 0.4))  # let it get somewhere, in the middle of flows
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=10) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()


Rows = Callable[[type[Record]], Awaitable[list[Any]]]


async def _check(storage: Storage, rows: Rows) -> dict[str, int]:
    sign_ups: list[SignUp] = await rows(SignUp)
    sign_ins: list[SignIn] = await rows(SignIn)
    sessions = {s.id: s for s in await rows(Session)}
    links: list[Link] = await rows(Link)
    users = {u.id for u in await rows(User)}
    consumed = {link.attempt_id for link in links if link.consumed_at is not None}

    completed_sessions: set[str] = set()
    in_progress: list[SignUp | SignIn] = []
    for attempt in [*sign_ups, *sign_ins]:
        if attempt.status in (SignUpStatus.COMPLETE, SignInStatus.COMPLETE):
            # complete means: its session exists and its link was consumed, all together
            assert attempt.created_session_id in sessions, attempt
            assert attempt.id in consumed, attempt
            completed_sessions.add(attempt.created_session_id)
            if isinstance(attempt, SignUp):
                assert attempt.created_user_id in users
        else:
            assert attempt.status in (
                SignUpStatus.MISSING_REQUIREMENTS,
                SignInStatus.NEEDS_FIRST_FACTOR,
            ), attempt
            assert attempt.id not in consumed, f"consumed link of an unfinished {attempt}"
            in_progress.append(attempt)
    # no session exists but the one of a completed attempt
    assert set(sessions) == completed_sessions
    for address in await rows(EmailAddress):
        assert address.user_id in users

    # the unfinished attempts can still be prepared (resent)
    links_app = make_links(storage, MemoryMailer())
    resent = 0
    for attempt in in_progress[:40]:
        client = await storage.get(Client, attempt.client_id)
        assert client is not None
        if isinstance(attempt, SignUp):
            await links_app.prepare_sign_up_verification(client, attempt.id, redirect_url="/w")
        else:
            await links_app.prepare_first_factor(client, attempt.id, redirect_url="/h")
        resent += 1
    counts = {
        "attempts": len(sign_ups) + len(sign_ins),
        "complete": len(completed_sessions),
        "in progress": len(in_progress),
        "resent": resent,
    }
    assert counts["attempts"] > 0 and counts["complete"] > 0
    return counts


@pytest.mark.anyio
async def test_sqlite_survives_sigkill_mid_flow(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    await (await SQLiteStorage.open(path)).close()
    for _ in range(ROUNDS):
        await anyio.to_thread.run_sync(_kill_mid_run, ["sqlite", str(path)])
    storage = await SQLiteStorage.open(path)

    async def rows(kind: type[Record]) -> list[Any]:
        return [
            from_row(kind, row) for row in await storage._read(f"SELECT * FROM {kind.table}", ())
        ]

    try:
        counts = await _check(storage, rows)
        print(f"\nSQLite after {ROUNDS} SIGKILLs: {counts}")
    finally:
        await storage.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with postgres_schema() as name:
        yield name


@pytest.mark.postgres
@pytest.mark.anyio
async def test_postgres_survives_sigkill_mid_flow(schema: str) -> None:
    storage = PostgresStorage(POSTGRES_DSN, schema=schema)
    try:
        await storage.migrate()
        for _ in range(ROUNDS):
            await anyio.to_thread.run_sync(_kill_mid_run, ["postgres", POSTGRES_DSN, schema])

        async def rows(kind: type[Record]) -> list[Any]:
            async with storage._connection() as connection:
                found = await connection.fetch(f"SELECT * FROM {kind.table}")
            return [from_row(kind, row) for row in found]

        counts = await _check(storage, rows)
        print(f"\nPostgreSQL after {ROUNDS} SIGKILLs: {counts}")
    finally:
        await storage.close()
