"""Email codes: the code in a verification email, typed on the device that asked for it.

The code is one more way to complete the same verification as the link (``links.settle``
writes either outcome): whichever is used first consumes both. Guessing is bounded three ways:
per verification (``max_email_code_attempts`` wrong codes fail it), per address across its
emails (``email_code_failures_per_address`` wrong codes an hour: a new email does not reset it)
and per client IP across addresses (``email_code_failures_per_ip``), the last two counted in the
shared storage so the limits hold across instances, and checked before any comparison.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime

from .context import RETRIES, Context
from .domain import flows
from .domain.errors import AuthError, ConflictError, InvalidRequestError, RateLimitedError
from .domain.models import Link, RequestInfo
from .links import A, LinkResult, settle

_SEPARATORS = re.compile(r"[\s-]+")
_MAX_CODE_CHARS = 32


def _typed(code: object) -> str:
    """The code as typed, without spaces or dashes. :raises InvalidRequestError: not a code."""
    if not isinstance(code, str) or len(code) > _MAX_CODE_CHARS:
        raise InvalidRequestError(long_message="code must be the code from the email.")
    typed = _SEPARATORS.sub("", code)
    if not typed:
        raise InvalidRequestError(long_message="Type the code from the email.")
    return typed


def _budgets(ctx: Context, email: str, ip_address: str) -> list[tuple[str, int]]:
    """The shared counters of wrong codes: the address's, and the client IP's (0 is off)."""
    settings = ctx.settings
    budgets = [(f"email_code:address:{email}", settings.email_code_failures_per_address)]
    if ip_address:
        budgets.append((f"email_code:ip:{ip_address}", settings.email_code_failures_per_ip))
    return [(key, limit) for key, limit in budgets if limit]


async def _check(ctx: Context, budgets: list[tuple[str, int]], now: datetime) -> None:
    """:raises RateLimitedError: a budget of wrong codes is spent; nothing is compared then."""
    for key, limit in budgets:
        count, reset_at = await ctx.storage.increment(
            key, window=ctx.settings.email_code_window, now=now, amount=0
        )
        if count >= limit:
            raise RateLimitedError(retry_after=reset_at - now)


async def _spend(ctx: Context, budgets: list[tuple[str, int]], now: datetime) -> None:
    """One wrong code, counted against every budget."""
    for key, _ in budgets:
        await ctx.storage.increment(key, window=ctx.settings.email_code_window, now=now)


def _wrong_code(attempt: A, decision: flows.ClickDecision) -> bool:
    """Whether the decision counted a wrong code (rather than refusing for another reason)."""
    before = attempt.verification.failed_email_code_attempts if attempt.verification else 0
    after = decision.verification.failed_email_code_attempts if decision.verification else 0
    return after > before


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
    budgets = _budgets(ctx, flows.email_of(attempt), request.ip_address)
    await _check(ctx, budgets, ctx.now())
    for _ in range(RETRIES):
        verification = attempt.verification
        link = None
        if verification is not None:
            link = await ctx.storage.get(Link, verification.link_id)
        decision = flows.judge_email_code(
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
        except AuthError:
            if _wrong_code(attempt, decision):  # the last allowed one, which fails it, too
                await _spend(ctx, budgets, ctx.now())
            raise
        if result is not None:
            return result
        attempt = await load()
    raise ConflictError()
