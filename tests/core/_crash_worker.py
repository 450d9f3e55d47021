"""A process running many sign-up and sign-in flows against SQLite or PostgreSQL until it is
killed; ``test_crash_safety.py`` SIGKILLs it mid-run and checks what it left behind.

    python -m tests.core._crash_worker sqlite /path/to/db
    python -m tests.core._crash_worker postgres DSN SCHEMA
"""

from __future__ import annotations

import random
import sys

import anyio

from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Storage

from ._flows import last_token, make_links

CONCURRENT_FLOWS = 8
READY_AFTER = 24  # flows done before the parent is told to start its clock


def open_storage(argv: list[str]) -> Storage:
    if argv[0] == "sqlite":
        from magiclink_core.storage import SQLiteStorage

        return SQLiteStorage(argv[1])
    from magiclink_core.storage import PostgresStorage

    return PostgresStorage(argv[1], schema=argv[2])


async def run(argv: list[str]) -> None:
    storage = open_storage(argv)
    mailer = MemoryMailer()
    links = make_links(storage, mailer)
    done = 0
    rng = random.Random()

    async def flows(worker: int) -> None:
        nonlocal done
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
            done += 1
            if done == READY_AFTER:
                print("ready", flush=True)

    async with anyio.create_task_group() as group:
        for worker in range(CONCURRENT_FLOWS):
            group.start_soon(flows, worker)


if __name__ == "__main__":
    anyio.run(run, sys.argv[1:])
