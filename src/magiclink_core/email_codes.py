"""Email codes: the code in a verification email, typed on the device that asked for it.

The code is one more way to complete the same verification as the link (``links.settle``
writes either outcome): whichever is used first consumes both. Guessing is bounded three ways:
per verification (``max_email_code_attempts`` wrong codes fail it), per address across its
emails (``email_code_failures_per_address`` wrong codes an hour: a new email does not reset it)
and per client IP across addresses (``email_code_failures_per_ip``), the last two counted in the
shared storage so the limits hold across instances, and checked before any comparison.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import throttle
from .context import RETRIES, Context
from .domain import email_code_rules, flows, limits
from .domain.errors import ConflictError, EmailCodeError, InvalidRequestError, MagicLinkError
from .domain.events import AuthEvent, Event
from .domain.models import Link, RequestInfo
from .domain.tokens import is_text, typed_code
from .links import A, LinkResult, settle

_MAX_CODE_CHARS = 32


def _typed(code: object) -> str:
    """The code as typed, without spaces or dashes. :raises InvalidRequestError: not a code."""
    if not is_text(code, max_chars=_MAX_CODE_CHARS):
        raise InvalidRequestError(long_message="code must be the code from the email.")
    typed = typed_code(code)
    if not typed:
        raise InvalidRequestError(long_message="Type the code from the email.")
    return typed


async def verify(
    ctx: Context,
    load: Callable[[], Awaitable[A]],
    *,
    client_id: str,
    code: object,
    request: RequestInfo | None,
) -> LinkResult[A]:
    """Complete the attempt ``load`` reads with the code from its email, typed by
    ``client_id``; see :meth:`MagicLinks.attempt_first_factor`."""
    typed = _typed(code)
    attempt = await load()  # ownership first: a stranger spends no one's budget
    request = request or RequestInfo()
    email = flows.email_of(attempt)
    budgets = limits.wrong_email_codes(ctx.settings, email, request.ip_address)
    subject = {"email_address": email, "attempt_id": attempt.id, "client_id": client_id}
    await throttle.check(
        ctx,
        budgets,
        ip_address=request.ip_address,
        email_address=email,
        attempt_id=attempt.id,
        client_id=client_id,
    )
    for _ in range(RETRIES):
        verification = attempt.verification
        link = None
        if verification is not None:
            link = await ctx.storage.get(Link, verification.link_id)
        decision = email_code_rules.judge_email_code(
            attempt=attempt,
            link=link,
            typed_digests=(
                ctx.keyring.code_digests(verification.link_id, typed) if verification else []
            ),
            client_id=client_id,
            max_attempts=ctx.settings.max_email_code_attempts,
            now=ctx.now(),
        )
        try:
            result = await settle(ctx, attempt, decision, request)
        except EmailCodeError as exc:
            await throttle.spend(ctx, budgets)
            await _refused(ctx, exc, request, subject)
            raise
        except MagicLinkError as exc:  # expired, used, or the last allowed wrong code
            if _counted_a_wrong_code(attempt, decision):
                await throttle.spend(ctx, budgets)
            await _refused(ctx, exc, request, subject)
            raise
        if result is not None:
            return result
        attempt = await load()
    raise ConflictError()


def _counted_a_wrong_code(attempt: A, decision: flows.ClickDecision) -> bool:
    """Whether the refusal was a wrong code (the last allowed one fails the verification)."""
    before = attempt.verification.failed_email_code_attempts if attempt.verification else 0
    after = decision.verification.failed_email_code_attempts if decision.verification else 0
    return after > before


async def _refused(
    ctx: Context,
    error: EmailCodeError | MagicLinkError,
    request: RequestInfo,
    subject: dict[str, str],
) -> None:
    await ctx.hooks.emit(
        AuthEvent(
            Event.EMAIL_CODE_REFUSED,
            reason=error.code.value,
            ip_address=request.ip_address or None,
            **subject,
        )
    )
