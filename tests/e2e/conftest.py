"""Real Chromium against the demo app served by uvicorn on 127.0.0.1 (a thread of this process).

One server and one browser per module; each test uses fresh browser contexts (a context is a
device: its own cookies) and its own email addresses. Time is a FakeClock the tests move.
Chromium is Debian's (/usr/bin/chromium, or MAGICLINK_CHROMIUM); where it is absent the tests
skip, unless CI (or MAGICLINK_REQUIRE_SERVICES=1) is set, where they fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import EmailMessage
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import REQUIRE_SERVICES, SECRET, StartedServer, free_port, link_in


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here drives Chromium: ``-m "not e2e"`` leaves them out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


CHROMIUM = os.environ.get("MAGICLINK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_counter = itertools.count(1)


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"Chromium is not installed at {CHROMIUM} (set MAGICLINK_CHROMIUM)"
    if os.environ.get("CI") or REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


class Mailbox(MemoryMailer):
    """The memory outbox, telling the test thread when a message lands (the server sends from its
    own thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Condition()

    async def send(self, message: EmailMessage) -> None:
        await super().send(message)
        with self.arrived:
            self.arrived.notify_all()


class ServerClock(FakeClock):
    """The server's fake clock. Moving it also wakes the server's waiters, once each: a waiting
    page's deadline is its link's expiry in real time, which a jump of a fake clock does not
    move, and waiters no longer poll while their notifier is healthy."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.on_advance: Callable[[], object] = lambda: None

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        now = super().advance(delta, **kwargs)
        self.on_advance()
        return now


@dataclass
class Server:
    url: str
    app: Any
    clock: FakeClock
    mailer: Mailbox

    def email(self, prefix: str = "user") -> str:
        return f"{prefix}{next(_counter)}-{time.time_ns() % 10**9}@example.com"

    def messages_to(self, address: str) -> list[Any]:
        return [m for m in self.mailer.outbox if m.to == address]

    def wait_for_link(self, address: str, *, count: int = 1, timeout: float = 5.0) -> str:
        """The link in the ``count``-th email to ``address`` (waits for it to arrive)."""
        with self.mailer.arrived:
            arrived = self.mailer.arrived.wait_for(
                lambda: len(self.messages_to(address)) >= count, timeout
            )
        assert arrived, f"no email #{count} to {address}"
        return link_in(self.messages_to(address)[count - 1].text)


@contextmanager
def serve_demo(
    wrap: Callable[[Any], Any] | None = None, *, storage: Any = None, **settings: Any
) -> Iterator[Server]:
    """The demo app under uvicorn on a free port, with ``settings`` over the tests' own;
    ``wrap``: an ASGI app of the test's around it (pages of a host app); ``storage``: another
    than a fresh memory storage."""
    import uvicorn

    from magiclink_asgi.demo import DemoConfig, build_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clock = ServerClock(datetime.now(UTC))  # near the browser's own clock
    mailer = Mailbox()
    app = build_app(
        DemoConfig(
            base_url=url,
            secret=SECRET,
            storage=MemoryStorage() if storage is None else storage,
            mailer=mailer,
            clock=clock,
            dev_mailbox=True,
            settings={
                "wait_poll_interval": timedelta(milliseconds=100),
                "links_per_address": 100,
                # every browser here is 127.0.0.1: the per-IP budgets would be one for all
                "attempts_per_ip": 10_000,
                "links_per_ip": 10_000,
                "confirmation_code_failures_per_ip": 10_000,
                **settings,
            },
        )
    )
    config = uvicorn.Config(
        app if wrap is None else wrap(app),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    started = threading.Event()
    srv = StartedServer(config, on_started=started.set)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    if not started.wait(timeout=10):
        raise RuntimeError("the demo server did not start")
    # a jump of the server's clock wakes the waiters, as a link expiring would wake them
    loop = srv.servers[0].get_loop()
    clock.on_advance = lambda: loop.call_soon_threadsafe(app.magiclinks.notifier.deliver_all)
    try:
        yield Server(url, app, clock, mailer)
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve_demo() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def device(browser: Any, server: Server) -> Iterator[Any]:
    """A factory of browser contexts (devices); each is closed after the test."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        context = browser.new_context(base_url=server.url, viewport=viewport, **options)
        context.set_default_timeout(5000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
