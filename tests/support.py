"""What the test packages share: the services' addresses, the test secret, a free port, reading a
link or a CSRF token out of a page or an email, notifiers a test can watch, and a uvicorn server
that says when it is up.

``MAGICLINK_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a missing PostgreSQL, Redis or
Chromium from a skip into a failure; elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn

from magiclink_core import EmailRenderer, Notifier
from magiclink_core.emails import LinkEmail, NoticeEmail
from magiclink_core.ports import EmailMessage, Subscription
from magiclink_core.session_cache import CHANNEL_PREFIX as SESSION_CHANNELS
from magiclink_core.testing import PassingNotifier

REQUIRE_SERVICES = os.environ.get("MAGICLINK_REQUIRE_SERVICES") == "1"
POSTGRES_DSN = os.environ.get(
    "MAGICLINK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAGICLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "test-secret-" + "x" * 40

TOKEN_RE = re.compile(r"[?&]token=(mll1_[A-Za-z0-9_-]{43})")
"""A link's token in an email's text or HTML (group 1)."""
_LINK = re.compile(r"https?://\S+/v1/verify\?token=[\w.~-]+")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def service_missing(what: str, why: str) -> None:
    """Skip (or, when services are required, fail) a test whose server is not there."""
    message = f"{what} is not reachable ({why}); set it up or unset MAGICLINK_REQUIRE_SERVICES"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(f"{what} is not reachable here ({why})")


def free_port() -> int:
    """A port nothing listens on (bound then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def token_in(text: str) -> str:
    """The link token in an email's text (or HTML)."""
    found = TOKEN_RE.search(text)
    assert found is not None, f"no link token in {text!r}"
    return found.group(1)


def link_in(text: str) -> str:
    """The whole verification link in an email's text."""
    found = _LINK.search(text)
    assert found is not None, f"no verification link in {text!r}"
    return found.group(0)


def csrf_token(html: str) -> str:
    """The hidden ``csrf_token`` of a form on a landing page (confirm, resend)."""
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token field on the page"
    return found.group(1)


class WatchedNotifier(PassingNotifier):
    """A real notifier with a window on it, so a test can wait until a waiter is parked (or gone)
    instead of sleeping and hoping. Everything is passed to the notifier it wraps.

    ``waiting`` counts the open subscriptions that have started waiting for a wake-up at least once:
    a long poll that reached the service and is held there. The session cache's subscriptions
    (open for as long as ``MagicLinks`` runs) are passed through uncounted.
    """

    def __init__(self, inner: Notifier) -> None:
        super().__init__(inner)
        self.open = 0
        self.waiting = 0
        self._changed: anyio.Event | None = None

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        if channel.startswith(SESSION_CHANNELS):  # the session cache's, open while links runs
            async with self.inner.subscribe(channel) as subscription:
                yield subscription
            return
        async with self.inner.subscribe(channel) as subscription:
            watched = _WatchedSubscription(subscription, self)
            self._count(opened=1)
            try:
                yield watched
            finally:
                self._count(opened=-1, waiting=-1 if watched.parked else 0)

    async def until_waiting(self, count: int = 1) -> None:
        """Return once ``count`` waiters are held."""
        await self._until(lambda: self.waiting >= count)

    async def until_idle(self) -> None:
        """Return once no subscription is left open."""
        await self._until(lambda: self.open == 0)

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def _count(self, *, opened: int = 0, waiting: int = 0) -> None:
        self.open += opened
        self.waiting += waiting
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


class _WatchedSubscription:
    def __init__(self, inner: Subscription, owner: WatchedNotifier) -> None:
        self.inner = inner
        self.owner = owner
        self.parked = False

    async def wait(self) -> None:
        if not self.parked:
            self.parked = True
            self.owner._count(waiting=1)
        await self.inner.wait()


class StartedServer(uvicorn.Server):
    """uvicorn's server, calling ``on_started`` once it listens: uvicorn sets ``started`` but
    signals nothing, and a test should wait for that moment, not poll for it."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], Any]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


CONFIRM_PAGE = "/auth/v1/verify/confirm"


async def after_confirm(browser: Any, answer: Any, *, retry: str | None = None) -> Any:
    """The page a browser shows after the confirm form's POST: the POST answers a confirmation
    or a wrong code (``retry="wrong"``) with a redirect to the confirmation page, which
    ``browser`` (an httpx client) then loads."""
    expected = CONFIRM_PAGE if retry is None else f"{CONFIRM_PAGE}?retry={retry}"
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == expected
    return await browser.get(expected)


TEMPLATE_TYPOS = {
    "sign_up.txt": '{% extends "_base.txt" %}{% block subject %}Join {{ app_name }}{% endblock %}'
    "{% block body %}Sign up: {{ email.lnk_url }}{% endblock %}",
    "email_address_added.txt": '{% extends "_base.txt" %}{% block subject %}Added{% endblock %}'
    "{% block body %}{{ email.adress }} was added.{% endblock %}",
}
"""Templates with a typo (``lnk_url``, ``adress``): undefined names are errors."""


class BreakableRenderer(EmailRenderer):
    """The library's templates, or, once ``broken``, :data:`TEMPLATE_TYPOS` (written to
    ``typo_dir``), as after a deploy of custom templates with a mistake in them."""

    def __init__(self, typo_dir: Path) -> None:
        super().__init__()
        for name, text in TEMPLATE_TYPOS.items():
            (typo_dir / name).write_text(text)
        self.typo = EmailRenderer(typo_dir)
        self.broken = False

    def render(self, email: LinkEmail | NoticeEmail) -> EmailMessage:
        return self.typo.render(email) if self.broken else super().render(email)
