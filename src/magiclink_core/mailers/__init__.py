"""Mailer adapters. ``SMTPMailer`` needs the ``smtp`` extra (aiosmtplib), imported when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .console import ConsoleMailer as ConsoleMailer
from .memory import MemoryMailer as MemoryMailer

if TYPE_CHECKING:
    from .smtp import SMTPDeliveryError as SMTPDeliveryError
    from .smtp import SMTPMailer as SMTPMailer

__all__ = ["ConsoleMailer", "MemoryMailer", "SMTPDeliveryError", "SMTPMailer"]


def __getattr__(name: str) -> Any:
    if name in {"SMTPMailer", "SMTPDeliveryError"}:
        from . import smtp

        return getattr(smtp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
