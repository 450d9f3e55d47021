"""A process running many sign-up and sign-in flows against SQLite or PostgreSQL until it kills
itself at a given point; ``test_crash_safety.py`` checks what it left behind.

    python -m tests.core._crash_worker SEED APPLY CHANGE sqlite /path/to/db
    python -m tests.core._crash_worker SEED APPLY CHANGE postgres DSN SCHEMA

The kill point is the first ``Storage.apply`` of the process, from the ``APPLY``-th on, with more
than ``CHANGE`` changes, once the adapter has written ``CHANGE`` of them: the adapters write
changes one by one inside their transaction, so the process dies with a transaction open and a
write still to come. ``SEED`` drives which links get clicked, and where. The flows run
concurrently, so which flow's write it is still depends on I/O timing.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Sequence
from typing import overload

import anyio

from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Change, Storage

from ._flows import last_token, make_links

CONCURRENT_FLOWS = 8


def open_storage(argv: list[str]) -> Storage:
    if argv[0] == "sqlite":
        from magiclink_core.storage import SQLiteStorage

        return SQLiteStorage(argv[1])
    from magiclink_core.storage import PostgresStorage

    return PostgresStorage(argv[1], schema=argv[2])


class KilledMidway(Sequence[Change]):
    """One apply's changes; reading change number ``at`` SIGKILLs the process, so the ones
    before it are written and nothing is committed."""

    def __init__(self, changes: Sequence[Change], at: int, point: str) -> None:
        self._changes = list(changes)
        self._at = at
        self._point = point

    def __len__(self) -> int:
        return len(self._changes)

    @overload
    def __getitem__(self, index: int) -> Change: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Change]: ...
    def __getitem__(self, index: int | slice) -> Change | Sequence[Change]:
        if index == self._at:
            print(f"killed at {self._point}, {self._at} of {len(self)} changes written", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return self._changes[index]


def kill_at(storage: Storage, apply_number: int, after_changes: int) -> None:
    """Make ``storage`` kill this process in the first apply, from the ``apply_number``-th on,
    with more than ``after_changes`` changes, once that many are written."""
    real_apply = storage.apply
    applies = 0

    async def apply(changes: Sequence[Change]) -> None:
        nonlocal applies
        applies += 1
        if applies >= apply_number and len(changes) > after_changes:
            changes = KilledMidway(changes, after_changes, f"apply {applies}")
        await real_apply(changes)

    storage.apply = apply  # type: ignore[method-assign]


async def run(seed: int, apply_number: int, after_changes: int, argv: list[str]) -> None:
    storage = open_storage(argv)
    kill_at(storage, apply_number, after_changes)
    mailer = MemoryMailer()
    links = make_links(storage, mailer)
    rng = random.Random(seed)

    async def flows(worker: int) -> None:
        n = 0
        while True:
            n += 1
            email = f"user{worker}-{n % 6}@example.org"
            client, _ = await links.create_client()
            try:
                attempt = await links.create_sign_in(client, email)
                await links.prepare_first_factor(client, attempt.id, redirect_url="/home")
                if attempt.user_id is None:  # no account yet: sign up instead
                    sign_up = await links.create_sign_up(client, email)
                    await links.prepare_sign_up_verification(
                        client, sign_up.id, redirect_url="/welcome"
                    )
            except Exception as exc:
                print(f"flow error: {exc!r}", file=sys.stderr, flush=True)
                continue
            if rng.random() < 0.75:  # most links get clicked, on this client or another device
                try:
                    await links.verify_link(
                        last_token(mailer, email), client if rng.random() < 0.5 else None
                    )
                except Exception as exc:
                    print(f"click error: {exc!r}", file=sys.stderr, flush=True)
            if len(mailer.outbox) > 1000:
                del mailer.outbox[:500]

    async with anyio.create_task_group() as group:
        for worker in range(CONCURRENT_FLOWS):
            group.start_soon(flows, worker)


if __name__ == "__main__":
    seed, apply_number, after_changes = (int(arg) for arg in sys.argv[1:4])
    anyio.run(run, seed, apply_number, after_changes, sys.argv[4:])
