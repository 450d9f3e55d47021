"""Building a MagicLinks over memory adapters with a fake clock, and reading links from mail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from magiclink_core import Client, MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET, token_in

BASE_URL = "https://app.example.com"


@dataclass
class World:
    links: MagicLinks
    storage: MemoryStorage
    mailer: MemoryMailer
    clock: FakeClock

    async def client(self) -> Client:
        client, _token = await self.links.create_client()
        return client

    def last_link(self, to: str) -> str:
        """The token of the newest link emailed to ``to``."""
        message = self.mailer.last_to(to)
        assert message is not None, f"no email to {to}"
        token = token_in(message.text)
        assert token in message.html
        return token


def make_world(**settings: Any) -> World:
    clock = FakeClock()
    storage = MemoryStorage()
    mailer = MemoryMailer()
    options: dict[str, Any] = {"secret": SECRET, "base_url": BASE_URL, "links_per_address": 0}
    options.update(settings)
    links = MagicLinks(Settings(**options), storage=storage, mailer=mailer, clock=clock)
    return World(links, storage, mailer, clock)


async def signed_up(world: World, email: str = "ann@example.org") -> tuple[Client, str]:
    """A user who signed up on a client; returns the client and the session token."""
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, email)
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/welcome")
    result = await world.links.verify_link(world.last_link(email), client)
    assert result.session_token is not None
    return client, result.session_token
