"""What stands around the click (``links.inspect``, ``links.open_link``, ``links.verify``): the
client IP's budget of wrong confirmation codes, and each refused link as a ``link_refused``
event.

A confirmation code (the one the starting device shows, typed on the device that opened the
link) is guessed at most ``max_confirmation_code_attempts`` times per link; across links, one
client IP may type ``confirmation_code_failures_per_ip`` wrong ones per window. The budget is
checked before any comparison and spent by every refused try that carried a code, so a network
that guesses is stopped even with a fresh link each time. A try that compares no code (a second
tap on Confirm after success) is answered even past the budget.
"""

from __future__ import annotations

from . import links, throttle
from .context import Context
from .domain import limits
from .domain.errors import ConfirmationCodeError, InvalidRequestError, MagicLinkError
from .domain.events import AuthEvent, Event
from .domain.models import Attempt, Client, RequestInfo, Session
from .domain.tokens import is_text
from .links import LinkPreview, LinkResult


async def inspect(ctx: Context, token: str, client: Client | None) -> LinkPreview:
    """:func:`links.inspect`, a refusal announced as an event."""
    try:
        return await links.inspect(ctx, token, client)
    except MagicLinkError as exc:
        await _refused(ctx, exc, client, None)
        raise


async def open_link(
    ctx: Context,
    token: str,
    client: Client | None,
    *,
    request: RequestInfo | None,
    signed_in: Session | None = None,
) -> LinkPreview | LinkResult[Attempt]:
    """:func:`links.open_link`, a refusal announced as an event (no code is typed, so no
    budget is spent)."""
    try:
        return await links.open_link(ctx, token, client, request=request, signed_in=signed_in)
    except MagicLinkError as exc:
        await _refused(ctx, exc, client, request)
        raise


async def verify(
    ctx: Context,
    token: str,
    client: Client | None,
    *,
    confirmation_code: str | None,
    request: RequestInfo | None,
    signed_in: Session | None = None,
) -> LinkResult[Attempt]:
    """:func:`links.verify` within the client IP's budget of wrong confirmation codes."""
    if confirmation_code is not None and not is_text(confirmation_code, max_chars=64):
        # not a code at all (a web layer passed on what a body held): nothing is compared
        raise InvalidRequestError(long_message="Type the code shown on the other device.")
    ip_address = request.ip_address if request is not None else ""
    budget = (
        limits.wrong_confirmation_codes(ctx.settings, ip_address)
        if confirmation_code is not None
        else []
    )
    within_budget = None
    if budget:
        client_id = client.id if client is not None else None

        async def within_budget() -> None:
            await throttle.check(ctx, budget, ip_address=ip_address, client_id=client_id)

    try:
        return await links.verify(
            ctx,
            token,
            client,
            confirmation_code=confirmation_code,
            request=request,
            before_code=within_budget,
            signed_in=signed_in,
        )
    except (MagicLinkError, ConfirmationCodeError) as exc:
        await throttle.spend(ctx, budget)
        await _refused(ctx, exc, client, request)
        raise


async def _refused(
    ctx: Context,
    error: MagicLinkError | ConfirmationCodeError,
    client: Client | None,
    request: RequestInfo | None,
) -> None:
    await ctx.hooks.emit(
        AuthEvent(
            Event.LINK_REFUSED,
            reason=error.code.value,
            client_id=client.id if client is not None else None,
            ip_address=(request.ip_address or None) if request is not None else None,
        )
    )
