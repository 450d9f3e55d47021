"""The ASGI lifespan around the library's own life: ``MagicLinks`` is entered before the app's
startup and has shut down (queued emails sent within ``mail_shutdown_grace``, the notifier, the
storage and the mail connection closed) before the server hears that the app's shutdown is over.

A server ends its event loop once it hears ``lifespan.shutdown.complete``: uvicorn then cancels
whatever is still running, so a library that closed only after the app returned would lose its
queued emails and leave the storage open (SQLite's worker thread then keeps the process alive)."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from magiclink_core import MagicLinks

from .http import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("magiclink")

_ENDS = frozenset(
    {"lifespan.startup.failed", "lifespan.shutdown.complete", "lifespan.shutdown.failed"}
)
"""What an app sends when its life is over: the library shuts down before it is passed on."""


async def run_lifespan(
    magiclinks: MagicLinks, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run the app's ``lifespan`` scope inside ``async with magiclinks``, shutting the library
    down before the app's last lifespan message reaches the server. A shutdown that fails turns
    the app's ``lifespan.shutdown.complete`` into ``lifespan.shutdown.failed`` (logged)."""
    async with AsyncExitStack() as life:
        await life.enter_async_context(magiclinks)

        async def sending(message: Message) -> None:
            if message["type"] in _ENDS:
                try:
                    await life.aclose()  # once: the stack is empty afterwards
                except Exception as exc:
                    logger.exception("magiclink could not shut down cleanly")
                    if message["type"] == "lifespan.shutdown.complete":
                        message = {
                            "type": "lifespan.shutdown.failed",
                            "message": f"magiclink could not shut down cleanly: {exc!r}",
                        }
            await send(message)

        await app(scope, receive, sending)
