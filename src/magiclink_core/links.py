"""Links: issuing one (mint, store its digest, email it), the click that consumes it, and the
resend of a dead one. The rules are the domain's (``flows.judge_click``, ``completion``); this
module reads, asks, and writes each once-only change with one ``Storage.apply``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

import anyio

from .context import RETRIES, Context
from .domain import flows
from .domain.completion import complete, refuse_claim
from .domain.errors import (
    ConfirmationCodeError,
    ConflictError,
    InvalidStateError,
    MagicLinkError,
    MagicLinkFailedError,
    MailDeliveryError,
    RateLimitedError,
)
from .domain.models import (
    Attempt,
    AttemptKind,
    Client,
    EmailAddress,
    Link,
    RequestInfo,
    Session,
    SignIn,
    SignUp,
    User,
    Verification,
)
from .domain.redirects import check_redirect_url
from .domain.tokens import TokenPurpose, new_confirmation_code, new_token
from .emails import LinkEmail
from .ports import Change, Delete, Insert, Update, WriteConflict

logger = logging.getLogger("magiclink")

A = TypeVar("A", bound=SignUp | SignIn | EmailAddress)

ATTEMPT_TYPES: dict[AttemptKind, type[SignUp] | type[SignIn] | type[EmailAddress]] = {
    AttemptKind.SIGN_UP: SignUp,
    AttemptKind.SIGN_IN: SignIn,
    AttemptKind.EMAIL_ADDRESS: EmailAddress,
}


@dataclass(frozen=True, slots=True)
class LinkPreview:
    """What a click would do, read without changing anything (the link landing's GET)."""

    kind: AttemptKind
    same_client: bool
    needs_confirmation: bool
    requested_by: RequestInfo
    requested_at: datetime
    expire_at: datetime
    email_address: str
    redirect_url: str


@dataclass(frozen=True, slots=True)
class LinkResult:
    """A link that worked. ``session_token`` is set only when the clicking client owns the
    created session; a session created for another client is collected by that client through
    :meth:`MagicLinks.activate_session`."""

    kind: AttemptKind
    attempt: Attempt
    verification: Verification
    verified_from_the_same_client: bool
    redirect_url: str
    session: Session | None = None
    session_token: str | None = None


# -- issuing -----------------------------------------------------------------------------------


async def send(ctx: Context, attempt: A, *, redirect_url: str, request: RequestInfo | None) -> A:
    """Mint a link for ``attempt``, store its digest, and email it; returns the attempt with its
    new verification. A link that could not be sent is taken back, so none exists unsent.

    :raises InvalidRedirectError, RateLimitedError, MailDeliveryError:
    """
    redirect = check_redirect_url(
        redirect_url,
        base_url=ctx.settings.base_url,
        allowed_origins=ctx.settings.allowed_redirect_origins,
    )
    email = flows.email_of(attempt)
    now = ctx.now()
    await _rate_limit(ctx, email, now)
    token = new_token(TokenPurpose.LINK)
    digest = ctx.keyring.digest(token, TokenPurpose.LINK)
    request = request or RequestInfo()
    verification = flows.new_verification(
        now=now,
        ttl=ctx.settings.link_ttl,
        link_id=digest,
        redirect_url=redirect,
        confirmation_code=new_confirmation_code(ctx.settings.confirmation_code_digits),
        requested_by=request,
    )
    kind = flows.kind_of(attempt)
    has_link = flows.carries_link(attempt)
    link = Link(
        id=digest,
        attempt_kind=kind,
        attempt_id=attempt.id,
        client_id=attempt.client_id or "",
        expire_at=verification.expire_at,
        created_at=now,
        updated_at=now,
        purge_after=verification.expire_at + ctx.settings.purge_grace,
    )
    prepared = cast(A, attempt.bumped(now, verification=verification))  # bumped keeps the type
    await ctx.write([Insert(link), Update(prepared)] if has_link else [Update(prepared)])
    message = ctx.emails.render(
        LinkEmail(
            kind=kind,
            has_account=has_link,
            to=email,
            app_name=ctx.settings.app_name,
            base_url=ctx.settings.base_url,
            link_url=f"{ctx.settings.verify_url}?token={token}" if has_link else None,
            valid_for=ctx.settings.link_ttl,
            device=request.described,
            ip_address=request.ip_address,
            requested_at=now,
        )
    )
    try:
        await ctx.mailer.send(message)
    except BaseException as exc:
        # no link may exist that was never sent: take it back, leave the attempt resendable,
        # also when the send was cancelled (a client gone, a caller's timeout)
        with anyio.CancelScope(shield=True):
            await _withdraw(ctx, prepared, attempt, link if has_link else None)
        if not isinstance(exc, Exception):
            raise
        logger.warning("sending a %s email failed: %s", message.kind, type(exc).__name__)
        if isinstance(exc, MailDeliveryError):
            raise
        raise MailDeliveryError() from exc
    await ctx.publish(kind, attempt.id)
    return prepared


async def _withdraw(ctx: Context, prepared: A, previous: A, link: Link | None) -> None:
    """Undo a prepare whose email was not sent. The link goes on its own, so a concurrent change
    to the attempt cannot keep an unsent link alive; the attempt goes back to its previous
    verification only if nothing changed it meanwhile."""
    if link is not None and not await ctx.try_write([Delete(Link, link.id, link.version)]):
        logger.error("could not withdraw an unsent link for %s", previous.id)
    restored = prepared.bumped(ctx.now(), verification=previous.verification)
    await ctx.try_write([Update(restored)])


async def _rate_limit(ctx: Context, email: str, now: datetime) -> None:
    if not ctx.settings.links_per_address:
        return
    count, reset_at = await ctx.storage.increment(
        f"links:{email}", window=ctx.settings.links_per_address_window, now=now
    )
    if count > ctx.settings.links_per_address:
        raise RateLimitedError(retry_after=reset_at - now)


async def resend(ctx: Context, token: str, *, request: RequestInfo | None) -> AttemptKind:
    """Email a fresh link for the attempt of an expired (or superseded) link; see
    :meth:`MagicLinks.resend_link`."""
    link, attempt = await _load(ctx, token)
    verification = attempt.verification
    if (
        not flows.in_progress_at(attempt, ctx.now())
        or verification is None
        or link.consumed_at is not None
    ):
        raise MagicLinkFailedError("This link can no longer be renewed.")
    # holding the old link proves nothing new: the new one goes to the same mailbox, for the same
    # client and redirect, named after the device that first asked
    await send(
        ctx,
        attempt,
        redirect_url=verification.redirect_url,
        request=request or verification.requested_by,
    )
    return link.attempt_kind


# -- clicking ----------------------------------------------------------------------------------


async def _load(ctx: Context, token: str) -> tuple[Link, Attempt]:
    for digest in ctx.keyring.candidate_digests(token, TokenPurpose.LINK):
        link = await ctx.storage.get(Link, digest)
        if link is not None:
            break
    else:
        logger.debug("link rejected: unknown or malformed token")
        raise MagicLinkFailedError("This link is not valid.")
    attempt = await ctx.storage.get(ATTEMPT_TYPES[link.attempt_kind], link.attempt_id)
    if attempt is None:
        logger.debug("link rejected: its attempt is gone")
        raise MagicLinkFailedError("This link is no longer valid.")
    return link, attempt


def _judge(
    ctx: Context, link: Link, attempt: Attempt, client: Client | None, code: str | None
) -> flows.ClickDecision:
    return flows.judge_click(
        link=link,
        attempt=attempt,
        clicking_client_id=client.id if client else None,
        policy=ctx.settings.cross_device,
        confirmation_code=code,
        max_code_attempts=ctx.settings.max_confirmation_code_attempts,
        now=ctx.now(),
    )


def _rejection(decision: flows.ClickDecision) -> MagicLinkError | ConfirmationCodeError:
    error = decision.error or MagicLinkFailedError()
    logger.debug("link rejected: %s", error.long_message)
    return error


async def inspect(ctx: Context, token: str, client: Client | None) -> LinkPreview:
    """What a click would do; see :meth:`MagicLinks.inspect_link`."""
    link, attempt = await _load(ctx, token)
    decision = _judge(ctx, link, attempt, client, None)
    verification = attempt.verification
    if decision.outcome is flows.ClickOutcome.REJECTED or verification is None:
        raise _rejection(decision)
    return LinkPreview(
        kind=link.attempt_kind,
        same_client=decision.same_client,
        needs_confirmation=decision.outcome is flows.ClickOutcome.NEEDS_CONFIRMATION,
        requested_by=verification.requested_by,
        requested_at=verification.requested_at,
        expire_at=min(link.expire_at, verification.expire_at),
        email_address=flows.email_of(attempt),
        redirect_url=verification.redirect_url,
    )


async def verify(
    ctx: Context,
    token: str,
    client: Client | None,
    *,
    confirmation_code: str | None,
    request: RequestInfo | None,
) -> LinkResult:
    """Consume a link; see :meth:`MagicLinks.verify_link`."""
    for _ in range(RETRIES):
        link, attempt = await _load(ctx, token)
        decision = _judge(ctx, link, attempt, client, confirmation_code)
        if decision.outcome is flows.ClickOutcome.NEEDS_CONFIRMATION:
            raise InvalidStateError(
                long_message="Type the code shown on the device that asked for this link."
            )
        if decision.outcome is flows.ClickOutcome.REJECTED:
            if decision.verification is not None:  # a wrong code counted, a mismatch recorded
                updated = attempt.bumped(ctx.now(), verification=decision.verification)
                if not await ctx.try_write([Update(updated)]):
                    continue
                await ctx.publish(link.attempt_kind, attempt.id)
            raise _rejection(decision)
        try:
            return await _complete(ctx, attempt, decision, client, request)
        except WriteConflict as conflict:
            if conflict.unique_field == "claimed_email" and isinstance(attempt, EmailAddress):
                await _refuse_claim(ctx, attempt, decision)
                raise MagicLinkFailedError("This address belongs to another account.") from None
    raise ConflictError()


async def _complete(
    ctx: Context,
    attempt: Attempt,
    decision: flows.ClickDecision,
    client: Client | None,
    request: RequestInfo | None,
) -> LinkResult:
    """Read what completing needs, ask the domain for the batch, apply it atomically."""
    owner_clicked = decision.same_client
    account: EmailAddress | None = None
    user: User | None = None
    if isinstance(attempt, EmailAddress):
        user = await ctx.storage.get(User, attempt.user_id)
        if user is None:
            raise MagicLinkFailedError("This account no longer exists.")
    else:
        account = await ctx.storage.find(EmailAddress, "claimed_email", flows.email_of(attempt))
    # a session's token goes to the clicking client only if it is the one the session is for
    signs_in = not isinstance(attempt, EmailAddress)
    token = new_token(TokenPurpose.SESSION) if owner_clicked and signs_in else None
    if owner_clicked:
        device = request
    else:  # the session is the starting client's: remember where it asked, not where it clicked
        device = attempt.verification.requested_by if attempt.verification else None
    completion = complete(
        attempt,
        decision,
        now=ctx.now(),
        account=account,
        user=user,
        session_token_digest=(
            ctx.keyring.digest(token, TokenPurpose.SESSION) if token is not None else None
        ),
        device=device,
        terms=ctx.session_terms,
    )
    await ctx.storage.apply(completion.changes)
    await ctx.hooks.emit(*completion.events)
    kind = flows.kind_of(attempt)
    await ctx.publish(kind, attempt.id)
    return LinkResult(
        kind=kind,
        attempt=completion.attempt,
        verification=completion.verification,
        verified_from_the_same_client=owner_clicked,
        redirect_url=completion.verification.redirect_url,
        session=completion.session,
        session_token=token,
    )


async def _refuse_claim(ctx: Context, address: EmailAddress, decision: flows.ClickDecision) -> None:
    if decision.link is None:
        return
    changes: list[Change] = refuse_claim(address, decision.link, ctx.now())
    await ctx.try_write(changes)
    await ctx.publish(AttemptKind.EMAIL_ADDRESS, address.id)
