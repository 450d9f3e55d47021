"""Emails that tell a user's other verified addresses of an account change (an address added,
removed, or made primary), so a change the user did not make does not go unnoticed.

A notice goes out like any email (off the request path while ``MagicLinks`` runs). It carries no
link and no code, and counts against no limit. One that cannot be sent is a
``mail_undeliverable`` event and a warning: the change it tells of stands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .context import Context
from .domain.errors import MailDeliveryError
from .domain.events import AuthEvent, Event
from .domain.models import RequestInfo
from .emails import NoticeEmail

logger = logging.getLogger("magiclink")


async def notify(
    ctx: Context,
    recipients: Sequence[str],
    event: AuthEvent,
    *,
    about: str,
    request: RequestInfo | None,
) -> None:
    """Email each of ``recipients`` that ``event`` happened to the address ``about``."""
    request = request or RequestInfo()
    now = ctx.now()
    for to in recipients:
        notice = NoticeEmail(
            kind=event.event.value,
            to=to,
            app_name=ctx.settings.app_name,
            base_url=ctx.settings.base_url,
            email_address=about,
            device=request.described,
            ip_address=request.ip_address,
            requested_at=now,
        )

        async def delivered() -> None:
            return None

        async def undeliverable(kind: str = notice.template, to: str = to) -> None:
            await ctx.hooks.emit(
                AuthEvent(
                    Event.MAIL_UNDELIVERABLE,
                    user_id=event.user_id,
                    email_address=to,
                    reason=kind,
                    ip_address=request.ip_address or None,
                )
            )

        try:
            message = ctx.render(notice)
        except MailDeliveryError:  # logged with its traceback; the change stands, as below
            await undeliverable()
            continue
        try:
            await ctx.delivery.send(
                message,
                deadline=now + ctx.settings.link_ttl,
                delivered=delivered,
                undeliverable=undeliverable,
            )
        except MailDeliveryError:  # sent inline and refused: the change stands, the event says so
            logger.warning("a %s notice could not be sent", message.kind)
