"""The ASGI lifespan: magiclink has shut down (queued emails sent within ``mail_shutdown_grace``,
storage and notifier closed) before the server hears that the app's shutdown is over. A server
ends its event loop once it hears that, so anything left running is cancelled: under uvicorn a
queued email was withdrawn unsent and a SQLite app never exited on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette

from magiclink_asgi import MagicLinkMiddleware
from magiclink_core import MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer, SMTPMailer
from magiclink_core.storage import MemoryStorage
from tests.core._smtp_server import SMTPServer, Transaction, running
from tests.support import SECRET, free_port

pytestmark = pytest.mark.anyio

WAIT = 30  # seconds: only to catch a hang


@contextmanager
def gated_smtp() -> Iterator[tuple[SMTPServer, threading.Event, threading.Event]]:
    """A real SMTP server that holds each message's reply until ``release`` is set; ``reached``
    is set when a message arrives."""
    reached, release = threading.Event(), threading.Event()

    def held(transaction: Transaction) -> Any:
        reached.set()
        release.wait(WAIT)
        return "ok"

    with running(SMTPServer(fate=held)) as server:
        try:
            yield server, reached, release
        finally:
            release.set()


async def test_the_server_hears_shutdown_complete_only_after_the_queued_email_went_out() -> None:
    with gated_smtp() as (server, reached, release):
        links = MagicLinks(
            Settings(secret=SECRET, base_url="http://localhost:8000"),
            storage=MemoryStorage(),
            mailer=SMTPMailer("127.0.0.1", server.port, sender="noreply@example.com", tls="none"),
        )
        app = MagicLinkMiddleware(Starlette(), magiclinks=links)
        to_app, from_server = anyio.create_memory_object_stream[dict[str, Any]](4)
        to_server, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
        heard: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            heard.append(message["type"])
            await to_server.send(message)

        async with anyio.create_task_group() as group:
            group.start_soon(
                app, {"type": "lifespan", "asgi": {"version": "3.0"}}, from_server.receive, send
            )
            await to_app.send({"type": "lifespan.startup"})
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            client, _ = await links.create_client()
            sign_up = await links.create_sign_up(client, "ann@example.org")
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
            assert await anyio.to_thread.run_sync(reached.wait, WAIT)  # the email is on the wire

            await to_app.send({"type": "lifespan.shutdown"})
            await anyio.wait_all_tasks_blocked()
            assert heard == ["lifespan.startup.complete"]  # still sending: not over yet
            release.set()
            with anyio.fail_after(WAIT):
                assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
        assert [m.rcpt_tos for m in server.handler.received] == [["ann@example.org"]]


APP = """
from starlette.applications import Starlette
from magiclink_asgi import MagicLinkMiddleware
from magiclink_core import MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer, SMTPMailer
from magiclink_core.storage import SQLiteStorage

links = MagicLinks(
    Settings(secret={secret!r}, base_url="http://127.0.0.1:{port}"),
    storage=SQLiteStorage("magiclink.sqlite3"),
    mailer=SMTPMailer("127.0.0.1", {smtp_port}, sender="noreply@example.com", tls="none"),
)
app = MagicLinkMiddleware({inner}, magiclinks=links)
"""

BARE_APP = """

async def bare(scope, receive, send):
    # an app that knows no lifespan, as ASGI's own examples are written
    assert scope["type"] == "http", scope["type"]
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""

SILENT_APP = """

async def silent(scope, receive, send):
    if scope["type"] == "lifespan":
        return  # says nothing, as some minimal apps do
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""

INNER_APPS = {"Starlette()": "", "bare": BARE_APP, "silent": SILENT_APP}
"""Apps to wrap: one that speaks the lifespan protocol, one that raises on it, one that returns
without a word (a server then goes on serving without it: magiclink must too)."""


class Server:
    """``python -m uvicorn app:app`` in a folder of its own, its log lines watched."""

    def __init__(self, folder: Path, port: int) -> None:
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port)],
            cwd=folder,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, text: str) -> None:
        with self._seen:
            found = self._seen.wait_for(lambda: any(text in line for line in self.lines), WAIT)
        assert found, f"never logged {text!r}:\n{''.join(self.lines)}"


@pytest.mark.parametrize("inner", list(INNER_APPS))
async def test_ctrl_c_under_uvicorn_sends_the_queued_email_and_exits(
    tmp_path: Path, inner: str
) -> None:
    port = free_port()
    with gated_smtp() as (smtp, reached, release):
        (tmp_path / "app.py").write_text(
            INNER_APPS[inner]
            + textwrap.dedent(APP).format(
                secret=SECRET, port=port, smtp_port=smtp.port, inner=inner
            )
        )
        server = Server(tmp_path, port)
        try:
            server.wait_for("Application startup complete")
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Origin": f"http://127.0.0.1:{port}"},
            ) as browser:
                made = await browser.post(
                    "/auth/v1/client/sign_ups", json={"email_address": "ann@example.org"}
                )
                assert made.status_code == 200, made.text
                prepared = await browser.post(
                    f"/auth/v1/client/sign_ups/{made.json()['id']}/prepare_verification",
                    json={"strategy": "email_link", "redirect_url": "/"},
                )
                assert prepared.status_code == 200, prepared.text
            assert await anyio.to_thread.run_sync(reached.wait, WAIT)

            server.process.send_signal(signal.SIGINT)  # Ctrl-C
            server.wait_for("Waiting for application shutdown")
            release.set()
            code = await anyio.to_thread.run_sync(lambda: server.process.wait(WAIT))
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()
    log = "".join(server.lines)
    assert code == 0, log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log and "unsupported" not in log, log
    assert [m.rcpt_tos for m in smtp.handler.received] == [["ann@example.org"]]


async def test_an_app_whose_startup_raises_is_left_to_the_server() -> None:
    """An app that took the startup message and then raised failed its startup: the error
    reaches the server (which decides to stop or serve), nothing is answered for the app, and
    the library is closed (its storage with it)."""

    class Closing(MemoryStorage):
        closed = False

        async def close(self) -> None:
            self.closed = True

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("the app's database is down")

    storage = Closing()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="http://localhost:8000"),
        storage=storage,
        mailer=MemoryMailer(),
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = MagicLinkMiddleware(failing, magiclinks=links)
    with pytest.raises(RuntimeError, match="database is down"):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == []
    assert storage.closed
