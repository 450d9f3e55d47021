"""A magiclink app in process, spoken to over HTTP from a chosen client address (the socket
peer the server sees), with the events it emits recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from magiclink_asgi import MagicLinkMiddleware
from magiclink_core import AuthEvent, Event, MagicLinks
from magiclink_core.mailers import MemoryMailer

from ..asgi.harness import make_magiclinks

BASE = "https://app.example.com"


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class App:
    magiclinks: MagicLinks
    mailer: MemoryMailer
    asgi: MagicLinkMiddleware
    events: list[AuthEvent] = field(default_factory=list)

    def of(self, kind: Event) -> list[AuthEvent]:
        return [e for e in self.events if e.event is kind]

    @asynccontextmanager
    async def browser(
        self, peer: str = "203.0.113.7", headers: dict[str, str] | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        """A browser (its own cookies) whose connections come from ``peer``."""
        transport = httpx.ASGITransport(self.asgi, client=(peer, 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE, headers={"origin": BASE, **(headers or {})}
        ) as client:
            yield client


def make_app(*, middleware: dict[str, Any] | None = None, **settings: Any) -> App:
    """An app whose limits are the defaults unless ``settings`` say otherwise."""
    settings.setdefault("links_per_address", 5)
    magiclinks, mailer = make_magiclinks(BASE, **settings)
    asgi = MagicLinkMiddleware(_ok, magiclinks=magiclinks, pages=False, **(middleware or {}))
    app = App(magiclinks, mailer, asgi)

    async def record(event: AuthEvent) -> None:
        app.events.append(event)

    for kind in Event:
        magiclinks.on(kind, record)
    return app


async def start_sign_in(browser: httpx.AsyncClient, email: str) -> httpx.Response:
    return await browser.post("/auth/v1/client/sign_ins", json={"identifier": email})


async def send_link(browser: httpx.AsyncClient, email: str) -> httpx.Response:
    """Create a sign-up for ``email`` and ask for its link; the prepare's answer (or the
    create's, when that was refused)."""
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": email})
    if created.status_code != 200:
        return created
    return await browser.post(
        f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
        json={"strategy": "email_link", "redirect_url": "/"},
    )


def assert_limited(response: httpx.Response, reason: str) -> None:
    """A 429 that says what to do and when."""
    assert response.status_code == 429, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "rate_limited"
    assert reason in error["long_message"] and "Try again in" in error["long_message"]
    retry_after = int(response.headers["retry-after"])
    assert retry_after > 0 and error["meta"]["retry_after"] == retry_after
