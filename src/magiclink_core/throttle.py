"""Spending and checking rate limits (``domain/limits.py`` says which) in the shared storage.

Two ways to count, by what the limit is for:

- :func:`take` counts every try and refuses beyond the limit: one atomic increment, so
  concurrent requests on several instances cannot all slip under it (attempts and emails asked
  for per client IP).
- :func:`check` before the work and :func:`spend` after it, only when it counts: what reached a
  mailbox, what was a wrong code (``amount=0`` reads a counter without counting).

A refusal is a :class:`~magiclink_core.domain.errors.RateLimitedError` (429, ``Retry-After``) and
a ``rate_limited`` event whose ``reason`` is the limit's setting name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NoReturn

from .context import Context
from .domain.errors import RateLimitedError
from .domain.events import AuthEvent, Event
from .domain.limits import Limit


async def take(
    ctx: Context, limits: Sequence[Limit], *, now: datetime | None = None, **subject: str | None
) -> None:
    """Count one try against each of ``limits`` (as of ``now``, default the clock's).
    :raises RateLimitedError: one is spent."""
    if not limits:  # a limit turned off: nothing to count, not even the clock to read
        return
    now = now or ctx.now()
    for limit in limits:
        count, reset_at = await ctx.storage.increment(limit.key, window=limit.window, now=now)
        if count > limit.limit:
            await _refuse(ctx, limit, reset_at, now, subject)


async def check(
    ctx: Context, limits: Sequence[Limit], *, now: datetime | None = None, **subject: str | None
) -> None:
    """Refuse if a budget is spent, counting nothing. :raises RateLimitedError:"""
    if not limits:
        return
    now = now or ctx.now()
    for limit in limits:
        count, reset_at = await ctx.storage.increment(
            limit.key, window=limit.window, now=now, amount=0
        )
        if count >= limit.limit:
            await _refuse(ctx, limit, reset_at, now, subject)


async def spend(ctx: Context, limits: Sequence[Limit]) -> None:
    """Count one against each of ``limits`` (the work counted)."""
    if not limits:
        return
    now = ctx.now()
    for limit in limits:
        await ctx.storage.increment(limit.key, window=limit.window, now=now)


async def _refuse(
    ctx: Context, limit: Limit, reset_at: datetime, now: datetime, subject: dict[str, str | None]
) -> NoReturn:
    await ctx.hooks.emit(
        AuthEvent(
            Event.RATE_LIMITED,
            reason=limit.name,
            email_address=subject.get("email_address"),
            attempt_id=subject.get("attempt_id"),
            client_id=subject.get("client_id"),
            user_id=subject.get("user_id"),
            ip_address=subject.get("ip_address") or None,
        )
    )
    raise RateLimitedError(retry_after=reset_at - now, reason=limit.reason)
