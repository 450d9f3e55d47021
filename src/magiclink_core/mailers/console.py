"""Prints emails to a stream: development without an SMTP server.

The plain-text body, which holds the link, is printed on purpose: this mailer is for a developer's
own terminal. Never use it in production, where the log would hold live sign-in links.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ..ports import EmailMessage


class ConsoleMailer:
    """Prints each email to ``stream`` (standard output by default)."""

    instant = True  # never waits, never fails: sent inline, not queued

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: EmailMessage) -> None:
        stream = self._stream or sys.stdout
        rule = "-" * 72
        stream.write(
            f"{rule}\nTo: {message.to}\nSubject: {message.subject}\n\n{message.text}\n{rule}\n"
        )
        stream.flush()
