"""Waiting for an attempt's verification to move on: the guide's ``startMagicLinkFlow`` wait for
sign-ups, sign-ins and email addresses, built on :func:`waiting.wait_for_change`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import anyio

from .context import Context, attempt_channel
from .domain.models import (
    AttemptKind,
    Client,
    EmailAddress,
    Session,
    SignIn,
    SignUp,
    VerificationStatus,
)
from .waiting import wait_for_change

A = TypeVar("A", SignUp, SignIn, EmailAddress)

MAX_WAIT = timedelta(seconds=30)
"""The longest one wait lasts; callers wait again (long-polling) for longer."""

_EXPIRY_MARGIN = timedelta(milliseconds=50)


def _status_of(attempt: SignUp | SignIn | EmailAddress) -> VerificationStatus | None:
    return attempt.verification.status if attempt.verification is not None else None


async def wait_for(
    ctx: Context,
    kind: AttemptKind,
    load: Callable[[], Awaitable[A]],
    attempt_id: str,
    *,
    timeout: timedelta,
    since_version: int | None,
    cancelled: anyio.Event | None,
    since_status: VerificationStatus | None = None,
) -> A:
    """Wait until the attempt ``load`` reads changes (its version or its verification's
    status), at most ``timeout`` (capped at :data:`MAX_WAIT`, and at the link's expiry, which is
    not a write). Answers at once when ``since_version`` is older than the stored version, when
    the verification's status is not ``since_status``, or (no ``since_status`` given) when the
    verification is already over: a caller that saw it over (expired) and says so waits on, for
    a new version (a link renewed from another device). ``cancelled`` ends the wait early with
    the attempt as it is. ``load`` is read once before the wait (it checks ownership), then once
    per wake-up.
    """
    if not isinstance(attempt_id, str):  # not an id (a caller passed on any input): no channel
        return await load()  # the read refuses it, as it refuses an unknown id
    return await wait_for_change(
        notifier=ctx.notifier,
        channel=attempt_channel(kind, attempt_id),
        load=load,
        watch=_VerificationWatch(ctx, timeout, since_version, since_status),
        poll_interval=ctx.settings.wait_poll_interval,
        cancelled=cancelled,
    )


class _VerificationWatch:
    """What a wait for an attempt waits for: a new version, or its verification's status
    moving on from the one the caller saw (one small object per waiter, which it keeps while
    parked)."""

    __slots__ = ("_ctx", "_since_status", "_since_version", "_status", "_timeout", "_version")

    def __init__(
        self,
        ctx: Context,
        timeout: timedelta,
        since_version: int | None,
        since_status: VerificationStatus | None,
    ) -> None:
        self._ctx = ctx
        self._timeout = timeout
        self._since_version = since_version
        self._since_status = since_status
        self._version = -1
        self._status: VerificationStatus | None = None

    def begin(self, first: SignUp | SignIn | EmailAddress) -> float | None:
        status = _status_of(first)
        if self._since_status is not None:
            self._status = self._since_status  # what the caller saw: anything else is news
        else:
            self._status = status
            if first.verification is not None and status is not VerificationStatus.UNVERIFIED:
                return None  # its verification is over (verified, expired, failed): no wait
        self._version = first.version if self._since_version is None else self._since_version
        longest = min(max(self._timeout, timedelta(0)), MAX_WAIT)
        if first.verification is not None and status is VerificationStatus.UNVERIFIED:
            # waiting for the link: wake up when it expires
            until_expiry = first.verification.expire_at - self._ctx.now() + _EXPIRY_MARGIN
            longest = min(longest, max(until_expiry, timedelta(0)))
        return longest.total_seconds()

    def done(self, current: SignUp | SignIn | EmailAddress) -> bool:
        return current.version != self._version or _status_of(current) is not self._status


class WaitMethods:
    """The guide's ``startMagicLinkFlow`` waits (mixed into ``MagicLinks``)."""

    _ctx: Context

    async def get_sign_up(self, client: Client, sign_up_id: str) -> SignUp:
        """:raises NotFoundError: no such sign-up for this client."""
        return await self._ctx.owned(SignUp, client.id, sign_up_id)

    async def get_sign_in(self, client: Client, sign_in_id: str) -> SignIn:
        """:raises NotFoundError: no such sign-in for this client."""
        return await self._ctx.owned(SignIn, client.id, sign_in_id)

    async def get_email_address(self, session: Session, email_address_id: str) -> EmailAddress:
        """:raises NotFoundError: not an address of this session's user."""
        return await self._ctx.owned(EmailAddress, session.user_id, email_address_id)

    # -- waiting (the guide's startMagicLinkFlow) --------------------------------------------

    async def wait_for_sign_up(
        self,
        client: Client,
        sign_up_id: str,
        *,
        timeout: timedelta = MAX_WAIT,
        since_version: int | None = None,
        since_status: VerificationStatus | None = None,
        cancelled: anyio.Event | None = None,
    ) -> SignUp:
        """Wait until the sign-up changes (or leaves ``unverified``), at most ``timeout``
        (capped at 30 seconds).

        Answers at once when ``since_version`` is older than the stored version, or when the
        verification is already over (verified, expired, failed). ``since_status``: the status
        of the verification the caller last saw; any other is answered at once, and one over
        is then waited on too (a page showing "expired" hears of a link renewed from another
        device). ``cancelled`` ends the wait early with the attempt as it is (the guide's
        ``cancelMagicLinkFlow``).

        :raises NotFoundError: no such sign-up for this client.
        """
        return await wait_for(
            self._ctx,
            AttemptKind.SIGN_UP,
            lambda: self.get_sign_up(client, sign_up_id),
            sign_up_id,
            timeout=timeout,
            since_version=since_version,
            since_status=since_status,
            cancelled=cancelled,
        )

    async def wait_for_sign_in(
        self,
        client: Client,
        sign_in_id: str,
        *,
        timeout: timedelta = MAX_WAIT,
        since_version: int | None = None,
        since_status: VerificationStatus | None = None,
        cancelled: anyio.Event | None = None,
    ) -> SignIn:
        """As :meth:`wait_for_sign_up`, for a sign-in. :raises NotFoundError:"""
        return await wait_for(
            self._ctx,
            AttemptKind.SIGN_IN,
            lambda: self.get_sign_in(client, sign_in_id),
            sign_in_id,
            timeout=timeout,
            since_version=since_version,
            since_status=since_status,
            cancelled=cancelled,
        )

    async def wait_for_email_address(
        self,
        session: Session,
        email_address_id: str,
        *,
        timeout: timedelta = MAX_WAIT,
        since_version: int | None = None,
        since_status: VerificationStatus | None = None,
        cancelled: anyio.Event | None = None,
    ) -> EmailAddress:
        """As :meth:`wait_for_sign_up`, for an address's verification. :raises NotFoundError:"""
        return await wait_for(
            self._ctx,
            AttemptKind.EMAIL_ADDRESS,
            lambda: self.get_email_address(session, email_address_id),
            email_address_id,
            timeout=timeout,
            since_version=since_version,
            since_status=since_status,
            cancelled=cancelled,
        )
