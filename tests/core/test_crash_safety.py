"""An app process SIGKILLed in the middle of sign-up and sign-in flows, on SQLite and on
PostgreSQL. Afterwards every attempt is untouched and resendable, or complete with its session;
no session exists without the consumed link of a completed attempt.

Where each process dies is drawn from a seed (``CRASH_SEEDS``, or ``MAGICLINK_CRASH_SEED`` to try
another): the same seed kills at the same points, and a failure names its seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
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
from tests.support import POSTGRES_DSN

from ._flows import make_links
from ._services import postgres_schema

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3  # kill, restart on the same database, kill again
CRASH_SEEDS = [int(os.environ.get("MAGICLINK_CRASH_SEED", "20240611"))]


def kill_points(seed: int) -> list[tuple[int, int]]:
    """Where each round's process dies: (n, k) is in its first storage write from the n-th on
    (n drawn from the seed, a few hundred writes into the flows) with more than k changes, once
    k of them are written; k is 0, 1, 2 in turn."""
    rng = random.Random(seed)
    return [(rng.randrange(100, 400), k % 3) for k in range(ROUNDS)]


def _kill_mid_run(seed: int, apply_number: int, after_changes: int, args: list[str]) -> str:
    """Run the worker until it kills itself at the given point; check that it did, and return
    its last words (where it died)."""
    point = [str(seed), str(apply_number), str(after_changes)]
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.core._crash_worker", *point, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # a bound to catch a worker that never gets there (a round takes a second or two)
        out, _ = worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.communicate()
        raise AssertionError(f"the worker did not reach its kill point {point} in 30 s") from None
    assert worker.returncode == -signal.SIGKILL, f"the worker ended otherwise: {out!r}"
    last_words = out.strip()
    assert last_words.startswith("killed at apply "), last_words
    assert f", {after_changes} of " in last_words, last_words
    return last_words


async def _crash_rounds(seed: int, args: list[str]) -> None:
    for round_number, (apply_number, after_changes) in enumerate(kill_points(seed)):
        print(
            await anyio.to_thread.run_sync(
                _kill_mid_run, seed + round_number, apply_number, after_changes, args
            )
        )


def _replay_note(error: AssertionError, seed: int) -> None:
    points = kill_points(seed)
    error.add_note(f"crash seed {seed}, kill points {points}: MAGICLINK_CRASH_SEED={seed} replays")


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
        elif attempt.status in (SignUpStatus.ABANDONED, SignInStatus.ABANDONED):
            # a sign-in replaced by the sign-up its flow started for the same address
            assert attempt.id not in consumed, f"consumed link of an abandoned {attempt}"
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


@dataclass
class Database:
    """A database the workers crash on, with the checker's own storage on it (opened, and
    migrated, before the first worker starts)."""

    name: str
    worker_args: list[str]
    storage: SQLiteStorage | PostgresStorage

    async def rows(self, kind: type[Record]) -> list[Any]:
        """Every row of ``kind``'s table, whatever its state."""
        sql = f"SELECT * FROM {kind.table}"
        if isinstance(self.storage, SQLiteStorage):
            found = await self.storage._read(sql, ())
        else:
            async with self.storage._connection() as connection:
                found = await connection.fetch(sql)
        return [from_row(kind, row) for row in found]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "crash.db"
        sqlite = await SQLiteStorage.open(path)
        yield Database("SQLite", ["sqlite", str(path)], sqlite)
        await sqlite.close()
        return
    async with postgres_schema() as schema:
        postgres = PostgresStorage(POSTGRES_DSN, schema=schema)
        await postgres.migrate()
        yield Database("PostgreSQL", ["postgres", POSTGRES_DSN, schema], postgres)
        await postgres.close()


@pytest.mark.anyio
@pytest.mark.parametrize("seed", CRASH_SEEDS, ids=lambda seed: f"seed={seed}")
async def test_survives_sigkill_mid_flow(database: Database, seed: int) -> None:
    try:
        await _crash_rounds(seed, database.worker_args)
        counts = await _check(database.storage, database.rows)
    except AssertionError as error:
        _replay_note(error, seed)
        raise
    print(f"\n{database.name} after {ROUNDS} SIGKILLs (seed {seed}): {counts}")
