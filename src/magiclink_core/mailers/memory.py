"""An outbox in memory: tests and the development mailbox read what was sent."""

from __future__ import annotations

from ..ports import EmailMessage


class MemoryMailer:
    """Keeps every message in ``outbox``, oldest first."""

    instant = True  # never waits, never fails: sent inline, not queued

    def __init__(self) -> None:
        self.outbox: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.outbox.append(message)

    def last_to(self, address: str) -> EmailMessage | None:
        """The newest message sent to ``address``, if any."""
        return next((m for m in reversed(self.outbox) if m.to == address), None)
