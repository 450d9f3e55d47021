"""Email codes: the code in a verification email, typed on the device that asked for it.

The code is one more way to complete the same verification as the link (``links.settle``
writes either outcome): whichever is used first consumes both. Guessing is bounded three ways:
per verification (``max_email_code_attempts`` wrong codes fail it), per address across its
emails (``email_code_failures_per_address`` an hour: a new email does not reset it) and per
client IP across addresses (``email_code_tries_per_ip``), the last two in the shared storage so
the limits hold across instances.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime

from .context import RETRIES, Context
from .domain import flows
from .domain.errors import ConflictError, InvalidRequestError, RateLimitedError
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


async def _spend_a_try(ctx: Context, email: str, ip_address: str, now: datetime) -> None:
    """Count one try against the address's and the IP's budgets, before any comparison.

    :raises RateLimitedError: a budget is spent; nothing is compared.
    """
    settings = ctx.settings
    budgets = [(f"email_code:address:{email}", settings.email_code_failures_per_address)]
    if ip_address:
        budgets.append((f"email_code:ip:{ip_address}", settings.email_code_tries_per_ip))
    for key, limit in budgets:
        if not limit:
            continue
        count, reset_at = await ctx.storage.increment(
            key, window=settings.email_code_window, now=now
        )
        if count > limit:
            raise RateLimitedError(retry_after=reset_at - now)


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
    await _spend_a_try(ctx, flows.email_of(attempt), request.ip_address, ctx.now())
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
        result = await settle(ctx, attempt, decision, request)
        if result is not None:
            return result
        attempt = await load()
    raise ConflictError()
