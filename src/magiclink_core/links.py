"""Links: issuing one (mint, store its digest, email it), the click that consumes it, and the
resend of a dead one. The rules are the domain's (``flows.judge_click``, ``completion``); this
module reads, asks, and writes each once-only change with one ``Storage.apply``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar, cast

from . import sessions, throttle
from .context import RETRIES, Context
from .domain import flows, limits
from .domain.completion import complete, refuse_claim
from .domain.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    InvalidStateError,
    MagicLinkFailedError,
    NotFoundError,
)
from .domain.events import AuthEvent, Event
from .domain.models import (
    Attempt,
    AttemptKind,
    Client,
    EmailAddress,
    FailureReason,
    Link,
    RequestInfo,
    Session,
    SignIn,
    SignUp,
    Strategy,
    User,
    Verification,
    VerificationStatus,
)
from .domain.quick_init import quick_init
from .domain.resend_rules import judge_resend
from .domain.tokens import LINK, SESSION, new_numeric_code, new_token_and_code, new_token_and_id
from .emails import LinkEmail
from .ports import Change, Delete, Insert, Update, WriteConflict

logger = logging.getLogger("magiclink")

A = TypeVar("A", bound=SignUp | SignIn | EmailAddress)

_NOBODY = RequestInfo()
"""A request the caller did not describe (records are immutable: one serves every call)."""

ATTEMPT_TYPES: dict[AttemptKind, type[SignUp] | type[SignIn] | type[EmailAddress]] = {
    AttemptKind.SIGN_UP: SignUp,
    AttemptKind.SIGN_IN: SignIn,
    AttemptKind.EMAIL_ADDRESS: EmailAddress,
}


@quick_init
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
    needs_code: bool = False
    """With ``needs_confirmation``: the confirmation asks for the code the starting device
    shows (policy ``confirm``); else one tap confirms (policy ``allow``)."""
    already_complete: bool = False
    """The link was used already, by this very client or for it: a repeated click, answered
    with the same result again (see :attr:`LinkResult.repeated`)."""
    code_tries_left: int | None = None
    """With ``needs_code``: how many wrong codes the link may still take (wrong ones typed
    before are counted on it); the next wrong one past them fails it."""


AttemptT = TypeVar("AttemptT", bound=SignUp | SignIn | EmailAddress)


@quick_init
@dataclass(frozen=True, slots=True)
class LinkResult(Generic[AttemptT]):
    """A verification that worked, by link or by emailed code. ``session_token`` is set only
    when the client that used it owns the created session; a session created for another
    client is collected by that client through :meth:`MagicLinks.activate_session`."""

    kind: AttemptKind
    attempt: AttemptT
    verification: Verification
    verified_from_the_same_client: bool
    redirect_url: str
    session: Session | None = None
    session_token: str | None = None
    repeated: bool = False
    """The link had been used already by this very client (or for it): nothing was completed
    now; for the starting client whose session still lives, ``session_token`` is a fresh token
    for that same session (an answer lost on the way is not a lost sign-in), or None when the
    request was signed in to that session already (``session`` is then the one it holds)."""


# -- issuing -----------------------------------------------------------------------------------


async def send(
    ctx: Context,
    attempt: A,
    *,
    redirect_url: str | None,
    request: RequestInfo | None,
    strategy: Strategy = "email_link",
    asked_by: RequestInfo | None = None,
) -> A:
    """Prepare a verification of ``attempt`` and email it: a link (for ``email_link``, when
    the app sends links) and a code (when it sends codes), both of one verification. Their
    digests are stored; the plaintexts exist only in the email. Returns the attempt with its new
    verification. What could not be sent is taken back, and an email that cannot be rendered
    is found before anything is written, so no link exists unsent.

    ``request`` is the device the email names; ``asked_by`` (default: ``request``) is who asks
    now, whose client IP spends the ``links_per_ip`` budget.

    :raises InvalidRequestError: a link without ``redirect_url``, or nothing the app sends.
    :raises InvalidRedirectError, RateLimitedError, MailDeliveryError:
    """
    terms = ctx.link_terms
    with_link = strategy == "email_link" and terms.sends_links
    with_code = terms.sends_codes
    if not (with_link or with_code):
        raise InvalidRequestError(long_message="This app sends links only: use email_link.")
    if with_link and not redirect_url:
        raise InvalidRequestError(long_message="redirect_url is required for a link.")
    redirect = "" if not redirect_url else ctx.check_redirect_url(redirect_url)
    email = flows.email_of(attempt)
    now = ctx.now()
    asker_ip = (asked_by or request or _NOBODY).ip_address
    per_address: list[limits.Limit] = []
    if terms.links_limited:  # budgets that are off cost nothing, not even a call
        per_address = limits.links_to_address(ctx.settings, email)
        from_ip = limits.links_from_ip(ctx.settings, asker_ip)
        subject = {"email_address": email, "attempt_id": attempt.id, "ip_address": asker_ip}
        await throttle.check(ctx, per_address, now=now, **subject)  # counted once handed to mail
        await throttle.take(ctx, from_ip, now=now, **subject)
    # an address with no account gets an email saying so, and a verification like any other:
    # its code digest is of a code never sent, so typing codes behaves the same either way
    account = flows.has_account(attempt)
    sends_link = with_link and account  # the verification says email_link either way
    keyring = ctx.keyring
    token, confirmation_code = new_token_and_code(LINK, terms.confirmation_code_digits)
    digest = keyring.digest(token, LINK)
    code = new_numeric_code(terms.email_code_digits) if with_code else None
    request = request or _NOBODY
    kind = flows.kind_of(attempt)
    # rendered before anything is written: an email that cannot be rendered (a template's
    # typo) leaves the attempt and its earlier link as they were. After the budgets, so that a
    # refused request (429) costs no render
    message = ctx.render(
        LinkEmail(
            kind=kind,
            has_account=account,
            to=email,
            app_name=terms.app_name,
            base_url=terms.base_url,
            link_url=f"{terms.verify_url}?token={token}" if sends_link else None,
            sign_up_url=terms.sign_up_page_url,
            code=code if account else None,
            valid_for=terms.link_ttl,
            device=request.described,
            ip_address=request.ip_address,
            requested_at=now,
        )
    )
    verification = flows.new_verification(
        now=now,
        ttl=terms.link_ttl,
        link_id=digest,
        redirect_url=redirect if with_link else "",
        confirmation_code=confirmation_code,
        requested_by=request,
        strategy="email_link" if with_link else "email_code",
        email_code_digest=None if code is None else keyring.code_digest(digest, code),
    )
    link = (
        Link.new(
            now,
            id=digest,
            attempt_kind=kind,
            attempt_id=attempt.id,
            client_id=attempt.client_id or "",
            expire_at=verification.expire_at,
            purge_after=verification.expire_at + terms.purge_grace,
        )
        if sends_link
        else None
    )
    prepared = cast(A, attempt.bumped(now, verification=verification))  # bumped keeps the type
    await ctx.write([Update(prepared)] if link is None else [Insert(link), Update(prepared)])
    queued = ctx.delivery.running

    async def delivered() -> None:  # only what reached the mail server counts against the address
        await throttle.spend(ctx, per_address)

    async def undeliverable() -> None:
        # no link may exist that was never sent. Inline, the caller hears of it and the attempt
        # stays resendable; queued, the page that was told "sent" learns it failed
        await _withdraw(ctx, prepared, attempt, link, failed=queued)
        await ctx.hooks.emit(
            AuthEvent(
                Event.MAIL_UNDELIVERABLE,
                email_address=email,
                attempt_id=attempt.id,
                reason=message.kind,
                ip_address=asker_ip or None,
            )
        )

    await ctx.delivery.send(
        message,
        deadline=verification.expire_at,
        delivered=delivered if per_address else None,
        undeliverable=undeliverable,
    )
    await ctx.publish(kind, attempt.id)
    return prepared


async def _withdraw(
    ctx: Context, prepared: A, previous: A, link: Link | None, *, failed: bool
) -> None:
    """Undo a prepare whose email was not sent. The link goes on its own, so a concurrent change
    to the attempt cannot keep an unsent link alive; the attempt goes back to its previous
    verification (or, ``failed``, has this one marked failed) only if nothing changed it.

    Safe to run again after a storage outage (the delivery worker does), also when an earlier
    try's writes landed and only their answer was lost: a link already gone is withdrawn, and an
    attempt already as this would leave it is announced again."""
    if (
        link is not None
        and not await ctx.try_write([Delete(Link, link.id, link.version)])
        and await ctx.storage.get(Link, link.id) is not None
    ):
        logger.error("could not withdraw an unsent link for %s", previous.id)
    verification = prepared.verification
    if failed and verification is not None:
        verification = verification.model_copy(
            update={
                "status": VerificationStatus.FAILED,
                "failure_reason": FailureReason.UNDELIVERABLE,
            }
        )
    else:
        verification = previous.verification
    kind = flows.kind_of(prepared)
    if await ctx.try_write([Update(prepared.bumped(ctx.now(), verification=verification))]):
        await ctx.publish(kind, prepared.id)
        return
    current = await ctx.storage.get(type(prepared), prepared.id)
    if current is not None and current.verification == verification:
        await ctx.publish(kind, prepared.id)  # an earlier try wrote it; its answer was lost


async def resend(ctx: Context, token: str, *, request: RequestInfo | None) -> AttemptKind:
    """Email a fresh link for the attempt of an expired link (or a superseded one whose newer
    link expired too); see :meth:`MagicLinks.resend_link`. The rule is ``judge_resend``'s."""
    for _ in range(RETRIES):
        link, attempt = await _load(ctx, token)
        refused = judge_resend(link, attempt, ctx.now())
        if refused is not None:
            logger.debug("resend refused: %s", refused.message)
            raise refused
        verification = attempt.verification
        if verification is None:  # never: judge_resend refuses an attempt without one
            raise MagicLinkFailedError("This link can no longer be renewed.")
        # holding the old link proves nothing new: the new one goes to the same mailbox, for the
        # same client and redirect, named after the device that first asked
        try:
            await send(
                ctx,
                attempt,
                redirect_url=verification.redirect_url,
                request=verification.requested_by,
                asked_by=request or RequestInfo(),
            )
        except ConflictError:
            # the attempt changed under us (a second tap's resend won: nothing was written or
            # sent here): judged again, it is refused with the link that now works
            continue
        return link.attempt_kind
    raise ConflictError()


# -- clicking ----------------------------------------------------------------------------------


async def _load(ctx: Context, token: str) -> tuple[Link, Attempt]:
    for digest in ctx.keyring.candidate_digests(token, LINK):
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
    ctx: Context,
    link: Link,
    attempt: Attempt,
    client: Client | None,
    code: str | None,
    *,
    confirmed: bool,
) -> flows.ClickDecision:
    return flows.judge_click(
        link=link,
        attempt=attempt,
        clicking_client_id=client.id if client else None,
        policy=ctx.link_terms.cross_device,
        confirmation_code=code,
        max_code_attempts=ctx.link_terms.max_confirmation_code_attempts,
        now=ctx.now(),
        confirmed=confirmed,
    )


def rejection(decision: flows.ClickDecision) -> AuthError:
    """The error of a refused click or code, logged with its reason (never a token)."""
    error = decision.error or MagicLinkFailedError()
    logger.debug("link rejected: %s", error.long_message)
    return error


async def inspect(ctx: Context, token: str, client: Client | None) -> LinkPreview:
    """What a click would do; see :meth:`MagicLinks.inspect_link`."""
    link, attempt = await _load(ctx, token)
    return _preview(ctx, link, attempt, _judge(ctx, link, attempt, client, None, confirmed=False))


async def open_link(
    ctx: Context,
    token: str,
    client: Client | None,
    *,
    request: RequestInfo | None,
    signed_in: Session | None = None,
) -> LinkPreview | LinkResult[Attempt]:
    """A link opened: :func:`inspect`, then :func:`verify` when no confirmation is due, on
    one read of the link; see :meth:`MagicLinks.open_link`."""
    for _ in range(RETRIES):
        link, attempt = await _load(ctx, token)
        decision = _judge(ctx, link, attempt, client, None, confirmed=False)
        if decision.outcome is flows.ALREADY_COMPLETE and client is not None:
            return await _again(ctx, link, attempt, client, decision, signed_in)
        if decision.outcome is not flows.COMPLETE:
            # refused or to be confirmed: nothing is written (a scanner's GET changes nothing)
            return _preview(ctx, link, attempt, decision)
        result = await settle(ctx, attempt, decision, request)
        if result is not None:
            return result
    raise ConflictError()


def _preview(
    ctx: Context, link: Link, attempt: Attempt, decision: flows.ClickDecision
) -> LinkPreview:
    """What ``decision`` would do, or its refusal raised (and nothing written)."""
    verification = attempt.verification
    if decision.outcome is flows.REJECTED or verification is None:
        raise rejection(decision)
    tries = ctx.link_terms.max_confirmation_code_attempts - verification.failed_code_attempts
    return LinkPreview(
        kind=link.attempt_kind,
        same_client=decision.same_client,
        needs_confirmation=decision.outcome is flows.NEEDS_CONFIRMATION,
        needs_code=decision.needs_code,
        already_complete=decision.outcome is flows.ALREADY_COMPLETE,
        requested_by=verification.requested_by,
        requested_at=verification.requested_at,
        expire_at=min(link.expire_at, verification.expire_at),
        email_address=flows.email_of(attempt),
        redirect_url=verification.redirect_url,
        code_tries_left=tries if decision.needs_code else None,
    )


async def verify(
    ctx: Context,
    token: str,
    client: Client | None,
    *,
    confirmation_code: str | None,
    request: RequestInfo | None,
    before_code: Callable[[], Awaitable[None]] | None = None,
    signed_in: Session | None = None,
) -> LinkResult[Attempt]:
    """Consume a link; see :meth:`MagicLinks.verify_link`. ``before_code`` is awaited before
    ``confirmation_code`` is compared, only when it is (it may refuse: a spent budget); a
    link used already, or one that needs no code, is answered without it."""
    for _ in range(RETRIES):
        link, attempt = await _load(ctx, token)
        # judged without the code first (pure: no read more): is the code compared at all?
        if (
            confirmation_code is not None
            and before_code is not None
            and _judge(ctx, link, attempt, client, None, confirmed=True).needs_code
        ):
            await before_code()
        decision = _judge(ctx, link, attempt, client, confirmation_code, confirmed=True)
        if decision.outcome is flows.NEEDS_CONFIRMATION:
            raise InvalidStateError(
                long_message="Type the code shown on the device that asked for this link."
            )
        if decision.outcome is flows.ALREADY_COMPLETE and client is not None:
            return await _again(ctx, link, attempt, client, decision, signed_in)
        result = await settle(ctx, attempt, decision, request)
        if result is not None:
            return result
    raise ConflictError()


async def _again(
    ctx: Context,
    link: Link,
    attempt: Attempt,
    client: Client,
    decision: flows.ClickDecision,
    signed_in: Session | None,
) -> LinkResult[Attempt]:
    """A repeated click by the client that used the link (or that it was used for): the same
    result again. The starting client gets a fresh token for the session the link made, if that
    session still lives (it never gets a second session), unless the request is signed in to
    it already (``signed_in``: its cookie works, so nothing is written); once that session has
    ended, the link is used up like any other."""
    verification = attempt.verification
    if verification is None:  # never: ALREADY_COMPLETE is judged of a verified attempt
        raise rejection(decision)
    session: Session | None = None
    token: str | None = None
    created = attempt.created_session_id if isinstance(attempt, SignUp | SignIn) else None
    if (
        decision.same_client
        and isinstance(signed_in, Session)  # anything else a caller passed: not signed in
        and signed_in.id == created
        and signed_in.client_id == client.id
    ):
        session = signed_in
    elif decision.same_client and created is not None:
        try:
            session, token = await sessions.activate(ctx, client, created)
        except NotFoundError:
            raise MagicLinkFailedError(
                "This link has already been used.", redirect_url=verification.redirect_url
            ) from None
    logger.debug("link clicked again by the client that used it")
    return LinkResult(
        kind=link.attempt_kind,
        attempt=attempt,
        verification=verification,
        verified_from_the_same_client=flows.verified_from_the_same_client(attempt),
        redirect_url=verification.redirect_url,
        session=session,
        session_token=token,
        repeated=True,
    )


async def settle(
    ctx: Context, attempt: A, decision: flows.ClickDecision, request: RequestInfo | None
) -> LinkResult[A] | None:
    """Carry out a decision of a click or a code: refused, record what it changed (a wrong code
    counted, a mismatch recorded) and raise why; complete, write the completion. None when a
    concurrent change won the race (nothing was written: read and decide again)."""
    if decision.outcome is flows.REJECTED:
        if decision.verification is not None:
            updated = attempt.bumped(ctx.now(), verification=decision.verification)
            if not await ctx.try_write([Update(updated)]):
                return None
            await ctx.publish(flows.kind_of(attempt), attempt.id)
        raise rejection(decision)
    try:
        return await _complete(ctx, attempt, decision, request)
    except WriteConflict as conflict:
        if conflict.unique_field == "claimed_email" and isinstance(attempt, EmailAddress):
            await _refuse_claim(ctx, attempt, decision)
            raise MagicLinkFailedError("This address belongs to another account.") from None
        return None


async def _complete(
    ctx: Context, attempt: A, decision: flows.ClickDecision, request: RequestInfo | None
) -> LinkResult[A]:
    """Read what completing needs, ask the domain for the batch, apply it atomically."""
    owner_clicked = decision.same_client
    account: EmailAddress | None = None
    user: User | None = None
    primary_email: str | None = None
    if isinstance(attempt, EmailAddress):
        user = await ctx.storage.get(User, attempt.user_id)
        if user is None:
            raise MagicLinkFailedError("This account no longer exists.")
    else:
        account = await ctx.storage.find(EmailAddress, "claimed_email", flows.email_of(attempt))
        primary_email = await _primary_email(ctx, account)
    # a session's token goes to the clicking client only if it is the one the session is for
    signs_in = not isinstance(attempt, EmailAddress)
    token: str | None = None
    session_id: str | None = None
    if owner_clicked and signs_in:
        token, session_id = new_token_and_id(SESSION, Session.id_prefix)
    if owner_clicked:
        device = request
    else:  # the session is the starting client's: remember where it asked, not where it clicked
        device = attempt.verification.requested_by if attempt.verification else None
    client_sessions = (
        await ctx.storage.list(Session, "client_id", attempt.client_id)
        if signs_in and attempt.client_id
        else []
    )
    completion = complete(
        attempt,
        decision,
        now=ctx.now(),
        account=account,
        user=user,
        session_token_digest=(ctx.keyring.digest(token, SESSION) if token is not None else None),
        session_id=session_id,
        device=device,
        terms=ctx.session_terms,
        primary_email=primary_email,
        client_sessions=client_sessions,
        announce=ctx.hooks.listening,
    )
    # the sessions it ends are named: no instance may serve them from its cache
    await ctx.apply(completion.changes, sessions=completion.ended)
    if completion.events:
        await ctx.hooks.emit(*completion.events)
    kind = flows.kind_of(attempt)
    await ctx.publish(kind, attempt.id)
    done: A = cast(A, completion.attempt)  # the same attempt, completed
    return LinkResult(
        kind=kind,
        attempt=done,
        verification=completion.verification,
        verified_from_the_same_client=owner_clicked,
        redirect_url=completion.verification.redirect_url,
        session=completion.session,
        session_token=token,
    )


async def _primary_email(ctx: Context, account: EmailAddress | None) -> str | None:
    """The primary address of the account holding ``account`` (it may be another address)."""
    if account is None:
        return None
    owner = await ctx.storage.get(User, account.user_id)
    if owner is None or owner.primary_email_address_id in (None, account.id):
        return account.email
    primary = await ctx.storage.get(EmailAddress, owner.primary_email_address_id)
    return primary.email if primary is not None else account.email


async def _refuse_claim(ctx: Context, address: EmailAddress, decision: flows.ClickDecision) -> None:
    if decision.link is None:
        return
    changes: list[Change] = refuse_claim(address, decision.link, ctx.now())
    await ctx.try_write(changes)
    await ctx.publish(AttemptKind.EMAIL_ADDRESS, address.id)
