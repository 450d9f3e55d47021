"""Sign-up and sign-in flows over any storage, for the tests that run whole app instances on a
shared backend (two instances, crash safety)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio

from magiclink_core import Client, MagicLinks, Settings
from magiclink_core.domain.models import Link, Session, User
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Insert, Notifier, Storage, Update
from magiclink_core.testing import make_record
from magiclink_core.testing.contract import T0
from tests.support import SECRET, token_in

BASE_URL = "http://localhost:8000"


def make_links(
    storage: Storage, mailer: MemoryMailer, notifier: Notifier | None = None, **settings: Any
) -> MagicLinks:
    """An app instance: cross-device clicks allowed, no per-address rate limit."""
    options: dict[str, Any] = {
        "secret": SECRET,
        "base_url": BASE_URL,
        "links_per_address": 0,
        "cross_device": "allow",
    }
    options.update(settings)
    return MagicLinks(Settings(**options), storage=storage, mailer=mailer, notifier=notifier)


def last_token(mailer: MemoryMailer, to: str) -> str:
    """The token of the newest link emailed to ``to``."""
    message = mailer.last_to(to)
    assert message is not None, f"no email to {to}"
    return token_in(message.text)


async def sign_up(links: MagicLinks, mailer: MemoryMailer, email: str) -> Client:
    """A completed sign-up, clicked on the client that asked; returns that client."""
    client, _ = await links.create_client()
    attempt = await links.create_sign_up(client, email)
    await links.prepare_sign_up_verification(client, attempt.id, redirect_url="/welcome")
    await links.verify_link(last_token(mailer, email), client)
    return client


async def upgraded_session_goes_on(store: Storage, session: Session) -> None:
    """``session``, stored before a migration, reads back whole after it and can be given a new
    token that keeps the one it had (the columns the migration added)."""
    assert await store.get(Session, session.id) == session
    rotated = session.bumped(
        T0,
        token_digest="digest-new",
        previous_token_digest=session.token_digest,
        previous_token_until=T0 + timedelta(minutes=1),
    )
    await store.apply([Update(rotated)])
    assert await store.find(Session, "previous_token_digest", session.token_digest) == rotated


async def purge_lets_writes_in(store: Storage) -> None:
    """Purge 3000 expired links while another task writes: some writes land before the purge
    is over, so a purge never locks out live traffic."""
    expired = [make_record(Link, purge_after=T0 - timedelta(hours=1)) for _ in range(3000)]
    for start in range(0, len(expired), 500):
        await store.apply([Insert(link) for link in expired[start : start + 500]])
    purge_done = anyio.Event()
    writes_before: list[int] = []

    async def purge() -> None:
        assert await store.purge(T0, limit=10_000) == len(expired)
        purge_done.set()

    async def write() -> None:
        for n in range(20):
            await store.apply([Insert(make_record(User))])
            if not purge_done.is_set():
                writes_before.append(n)

    async with anyio.create_task_group() as group:
        group.start_soon(purge)
        group.start_soon(write)
    assert writes_before, "every write waited for the whole purge"
