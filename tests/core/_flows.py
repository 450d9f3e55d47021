"""Sign-up and sign-in flows over any storage, for the tests that run whole app instances on a
shared backend (two instances, crash safety)."""

from __future__ import annotations

import re
from typing import Any

from magiclink_core import Client, MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Notifier, Storage
from tests.conftest import SECRET

BASE_URL = "http://localhost:8000"
_TOKEN_RE = re.compile(r"[?&]token=(mll1_[A-Za-z0-9_-]{43})")


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
    match = _TOKEN_RE.search(message.text)
    assert match is not None, f"no link in the email to {to}"
    return match.group(1)


async def sign_up(links: MagicLinks, mailer: MemoryMailer, email: str) -> Client:
    """A completed sign-up, clicked on the client that asked; returns that client."""
    client, _ = await links.create_client()
    attempt = await links.create_sign_up(client, email)
    await links.prepare_sign_up_verification(client, attempt.id, redirect_url="/welcome")
    await links.verify_link(last_token(mailer, email), client)
    return client
