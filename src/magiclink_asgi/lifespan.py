"""The ASGI lifespan around the library's own life: ``MagicLinks`` is entered before the app's
startup and has shut down (queued emails sent within ``mail_shutdown_grace``, the notifier, the
storage and the mail connection closed) before the server hears that the app's shutdown is over.

A server ends its event loop once it hears ``lifespan.shutdown.complete``: uvicorn then cancels
whatever is still running, so a library that closed only after the app returned would lose its
queued emails and leave the storage open (SQLite's worker thread then keeps the process alive).

An app that does not speak the protocol (it raises on the ``lifespan`` scope, as ASGI's own
examples do, or returns without a word) leaves it to the server, which then serves without it.
The library still needs its life, so the middleware answers the protocol for it."""

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
    the app's ``lifespan.shutdown.complete`` into ``lifespan.shutdown.failed`` (logged). An app
    that ends having sent nothing, and not having failed its startup, has the protocol answered
    for it: the library lives until the server's shutdown."""
    async with AsyncExitStack() as life:
        await life.enter_async_context(magiclinks)
        spoke = False
        heard: list[str] = []

        async def receiving() -> Message:
            message = await receive()
            heard.append(message.get("type", ""))
            return message

        async def sending(message: Message) -> None:
            nonlocal spoke
            spoke = True
            await send(await _ending(life, message) if message["type"] in _ENDS else message)

        try:
            await app(scope, receiving, sending)
        except Exception:
            if spoke or heard:  # its startup (or shutdown) failed: the server decides
                raise
            logger.info("the app does not support the ASGI lifespan; magiclink answers it")
        if spoke:
            return
        if not heard:
            heard.append((await receive()).get("type", ""))
        if heard[0] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            heard.append((await receive()).get("type", ""))
        if heard[-1] == "lifespan.shutdown":
            await send(await _ending(life, {"type": "lifespan.shutdown.complete"}))


async def _ending(life: AsyncExitStack, message: Message) -> Message:
    """``message`` (the app's last) once the library has shut down; a shutdown that fails turns
    ``lifespan.shutdown.complete`` into ``lifespan.shutdown.failed``."""
    try:
        await life.aclose()  # once: the stack is empty afterwards
    except Exception as exc:
        logger.exception("magiclink could not shut down cleanly")
        if message["type"] == "lifespan.shutdown.complete":
            return {
                "type": "lifespan.shutdown.failed",
                "message": f"magiclink could not shut down cleanly: {exc!r}",
            }
    return message
