"""The state machines of sign-up, sign-in, email-address verification and sessions.

The transition tables and the click rules live here; beside them, in the same pure domain:
what completing an attempt writes (``completion.py``), what typing the emailed code does
(``email_code_rules.py``), how sessions live and end (``session_rules.py``), when a link may
be renewed (``resend_rules.py``), and the decision the click and code rules return
(``decisions.py``). The service only reads, asks, and writes.

Model
-----
An *attempt* (a sign-up, a sign-in, or an email address being verified) belongs to the client
that started it and carries at most one live :class:`Verification`. Preparing a verification
emails a link; the link's token is stored only as a digest, which the verification records as
``link_id``: a newer link replaces the older one. A newer attempt of the same kind started by
the same client *abandons* the older one (its link stops working); an attempt left alone past
``abandon_at`` reads as abandoned. A click on a link is judged here, without I/O:

    link used, by this client or for it (its attempt    ->  already complete: the same
      completed by this very link)                          answer again, nothing changes
    link used / superseded / attempt not in progress    ->  failed
    link failed by wrong codes (opened again, anyone)   ->  failed, saying so, and the
                                                            attempt's kind
    link past its expiry                                ->  expired
    clicked by the starting client                      ->  verified, attempt complete
    clicked by another client:
        policy deny                                     ->  client_mismatch, nothing completes
        opened, not confirmed (a GET, a mail scanner,   ->  ask for a confirmation (nothing
          a link preview)                                   changes): a tap under allow,
                                                            the code under confirm
        policy allow, confirmed                         ->  verified, attempt complete
        policy confirm, right code                      ->  verified, attempt complete
        policy confirm, wrong code                      ->  one try fewer; the last one fails it

Everything here takes records and the time and returns new records (or changes to write); the
service reads and writes them, each once-only change as one atomic storage operation. The
tables below are the whole of the allowed transitions: anything else raises and changes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal, TypeVar

from .changes import Change, Insert, Update
from .decisions import ClickDecision as ClickDecision
from .decisions import ClickOutcome as ClickOutcome
from .errors import (
    ClientMismatchError,
    ConfirmationCodeError,
    EmailCodeError,
    InvalidStateError,
    MagicLinkError,
    MagicLinkExpiredError,
    MagicLinkFailedError,
    TooManyConfirmationCodesError,
)
from .models import (
    Attempt,
    AttemptKind,
    Client,
    CrossDevicePolicy,
    EmailAddress,
    FailureReason,
    FirstFactor,
    Link,
    RequestInfo,
    SessionStatus,
    SignIn,
    SignInStatus,
    SignUp,
    SignUpStatus,
    Strategy,
    Verification,
    VerificationStatus,
)
from .tokens import typed_code

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", SignUp, SignIn, EmailAddress)
P = TypeVar("P", SignUp, SignIn)

# Members read on every click, bound once: Python 3.11 reads an enum class's member through
# EnumType.__getattr__'s slow hook (about 70 ns a read; 3.12 dropped it), and the link path read
# about 25 of them (binding them took 5 % off its instructions, callgrind)
UNVERIFIED: Final = VerificationStatus.UNVERIFIED
VERIFIED: Final = VerificationStatus.VERIFIED
EXPIRED: Final = VerificationStatus.EXPIRED
CLIENT_MISMATCH: Final = VerificationStatus.CLIENT_MISMATCH
WRONG_CODES: Final = FailureReason.CONFIRMATION_CODES
WRONG_EMAIL_CODES: Final = FailureReason.EMAIL_CODES
SIGN_UP_WAITING: Final = SignUpStatus.MISSING_REQUIREMENTS
SIGN_IN_WAITING: Final = SignInStatus.NEEDS_FIRST_FACTOR
COMPLETE: Final = ClickOutcome.COMPLETE
REJECTED: Final = ClickOutcome.REJECTED
ALREADY_COMPLETE: Final = ClickOutcome.ALREADY_COMPLETE
NEEDS_CONFIRMATION: Final = ClickOutcome.NEEDS_CONFIRMATION

VERIFICATION_TRANSITIONS: dict[VerificationStatus, frozenset[VerificationStatus]] = {
    VerificationStatus.UNVERIFIED: frozenset(
        {
            VerificationStatus.VERIFIED,
            VerificationStatus.EXPIRED,
            VerificationStatus.FAILED,
            VerificationStatus.CLIENT_MISMATCH,
        }
    ),
    VerificationStatus.VERIFIED: frozenset(),
    VerificationStatus.EXPIRED: frozenset(),
    VerificationStatus.FAILED: frozenset(),
    VerificationStatus.CLIENT_MISMATCH: frozenset(),
}

# why each transition happens (the drawing in docs/state-machines.md labels its arrows so)
TRANSITION_CAUSES: dict[tuple[StrEnum, StrEnum], str] = {
    (VerificationStatus.UNVERIFIED, VerificationStatus.VERIFIED): (
        "link opened (another device: with the confirmation code), or email code typed"
    ),
    (VerificationStatus.UNVERIFIED, VerificationStatus.EXPIRED): "link_ttl passed",
    (VerificationStatus.UNVERIFIED, VerificationStatus.FAILED): (
        "too many wrong confirmation or email codes, attempt abandoned, address taken"
    ),
    (VerificationStatus.UNVERIFIED, VerificationStatus.CLIENT_MISMATCH): (
        "link opened on another device (policy deny)"
    ),
    (SignUpStatus.MISSING_REQUIREMENTS, SignUpStatus.COMPLETE): "email address verified",
    (SignUpStatus.MISSING_REQUIREMENTS, SignUpStatus.ABANDONED): (
        "a newer sign-up of the client, or attempt_ttl passed"
    ),
    (SignInStatus.NEEDS_FIRST_FACTOR, SignInStatus.COMPLETE): "first factor verified",
    (SignInStatus.NEEDS_FIRST_FACTOR, SignInStatus.ABANDONED): (
        "a newer sign-in of the client, or attempt_ttl passed"
    ),
    (SessionStatus.ACTIVE, SessionStatus.ENDED): "signed out",
    (SessionStatus.ACTIVE, SessionStatus.REVOKED): "revoked by its user",
    (SessionStatus.ACTIVE, SessionStatus.EXPIRED): "idle timeout or lifetime passed",
}

SIGN_UP_TRANSITIONS: dict[SignUpStatus, frozenset[SignUpStatus]] = {
    SignUpStatus.MISSING_REQUIREMENTS: frozenset({SignUpStatus.COMPLETE, SignUpStatus.ABANDONED}),
    SignUpStatus.COMPLETE: frozenset(),
    SignUpStatus.ABANDONED: frozenset(),
}

SIGN_IN_TRANSITIONS: dict[SignInStatus, frozenset[SignInStatus]] = {
    SignInStatus.NEEDS_FIRST_FACTOR: frozenset({SignInStatus.COMPLETE, SignInStatus.ABANDONED}),
    SignInStatus.COMPLETE: frozenset(),
    SignInStatus.ABANDONED: frozenset(),
}

SESSION_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.ACTIVE: frozenset(
        {SessionStatus.ENDED, SessionStatus.REVOKED, SessionStatus.EXPIRED}
    ),
    SessionStatus.ENDED: frozenset(),
    SessionStatus.REVOKED: frozenset(),
    SessionStatus.EXPIRED: frozenset(),
}


def check_transition(table: dict[S, frozenset[S]], old: S, new: S) -> None:
    """Raise :class:`InvalidStateError` unless ``old -> new`` is in ``table``."""
    if new not in table[old]:
        raise InvalidStateError(long_message=f"Cannot go from {old.value!r} to {new.value!r}.")


# -- verifications -----------------------------------------------------------------------------


def new_verification(
    *,
    now: datetime,
    ttl: timedelta,
    link_id: str,
    redirect_url: str,
    confirmation_code: str,
    requested_by: RequestInfo,
    strategy: Strategy = "email_link",
    email_code_digest: str | None = None,
) -> Verification:
    """A fresh, waiting verification for an email just prepared: ``link_id`` is the digest of
    its link's token (of a token never sent when the email carries no link), and
    ``email_code_digest`` the keyed digest of its code, if it carries one."""
    return Verification.made(
        {
            "strategy": strategy,
            "expire_at": now + ttl,
            "redirect_url": redirect_url,
            "link_id": link_id,
            "confirmation_code": confirmation_code,
            "requested_by": requested_by,
            "requested_at": now,
            "email_code_digest": email_code_digest,
        }
    )


def effective_status(verification: Verification, now: datetime) -> VerificationStatus:
    """The status as a reader should see it: a waiting verification past its time is expired."""
    if verification.status is UNVERIFIED and now >= verification.expire_at:
        return EXPIRED
    return verification.status


def as_of(verification: Verification, now: datetime) -> Verification:
    """``verification`` with its effective status (expiry needs no write to be seen)."""
    status = effective_status(verification, now)
    if status is verification.status:
        return verification
    return verification.model_copy(update={"status": status})


def move(verification: Verification, status: VerificationStatus, **changes: object) -> Verification:
    check_transition(VERIFICATION_TRANSITIONS, verification.status, status)
    return verification.model_copy(update={"status": status, **changes})


# -- attempts ----------------------------------------------------------------------------------


_KINDS: dict[type[SignUp] | type[SignIn] | type[EmailAddress], tuple[AttemptKind, str]] = {
    # what each attempt verifies, and which field holds the address its links go to
    SignUp: (AttemptKind.SIGN_UP, "email_address"),
    SignIn: (AttemptKind.SIGN_IN, "identifier"),
    EmailAddress: (AttemptKind.EMAIL_ADDRESS, "email"),
}


def kind_of(attempt: Attempt) -> AttemptKind:
    """What an attempt verifies."""
    return _KINDS[type(attempt)][0]


def email_of(attempt: Attempt) -> str:
    """The address an attempt's links go to."""
    email: str = getattr(attempt, _KINDS[type(attempt)][1])
    return email


def in_progress(attempt: Attempt) -> bool:
    """Whether the attempt may still send a link or be completed by one."""
    if isinstance(attempt, SignUp):
        return attempt.status is SIGN_UP_WAITING
    if isinstance(attempt, SignIn):
        return attempt.status is SIGN_IN_WAITING
    return not attempt.verified


def in_progress_at(attempt: Attempt, now: datetime) -> bool:
    """Whether the attempt is in progress as readers see it at ``now``: a sign-up or sign-in
    left alone past ``abandon_at`` reads abandoned, and a link sent shortly before that outlives
    it must not complete (or renew) what readers were told was abandoned."""
    if isinstance(attempt, SignUp | SignIn) and now >= attempt.abandon_at:
        return False
    return in_progress(attempt)


def has_account(attempt: Attempt) -> bool:
    """Whether the attempt's email may carry a link or a code: not a sign-in of an address with
    no account (its email says so instead, and the attempt otherwise runs like any other)."""
    return not (isinstance(attempt, SignIn) and attempt.user_id is None)


def first_factors(sign_in: SignIn, *, links: bool, codes: bool) -> tuple[FirstFactor, ...]:
    """The ways the sign-in can be completed (the guide's ``supportedFirstFactors``)."""
    strategies: list[Strategy] = []
    if links:
        strategies.append("email_link")
    if codes:
        strategies.append("email_code")
    return tuple(
        FirstFactor(
            strategy=strategy,
            safe_identifier=sign_in.identifier,
            email_address_id=sign_in.email_address_id,
        )
        for strategy in strategies
    )


def verified_from_the_same_client(attempt: Attempt) -> bool:
    """Whether the attempt's link was clicked by the client that started it."""
    v = attempt.verification
    return (
        v is not None
        and v.status is VERIFIED
        and v.verified_at_client is not None
        and v.verified_at_client == attempt.client_id
    )


def attempt_as_of(attempt: A, now: datetime) -> A:
    """The attempt as a reader should see it at ``now``: an expired link reads as expired and an
    attempt left alone past ``abandon_at`` as abandoned, without a write."""
    updates: dict[str, object] = {}
    if attempt.verification is not None:
        current = as_of(attempt.verification, now)
        if current is not attempt.verification:
            updates["verification"] = current
    if isinstance(attempt, SignUp | SignIn) and in_progress(attempt) and now >= attempt.abandon_at:
        updates["status"] = _ABANDONED[type(attempt)]
    return attempt.model_copy(update=updates) if updates else attempt


_ABANDONED: dict[type[SignUp] | type[SignIn], SignUpStatus | SignInStatus] = {
    SignUp: SignUpStatus.ABANDONED,
    SignIn: SignInStatus.ABANDONED,
}


def abandon(attempt: SignUp | SignIn, now: datetime) -> SignUp | SignIn:
    """A sign-up or sign-in replaced by a newer one of its client: abandoned, its link dead."""
    if isinstance(attempt, SignUp):
        check_transition(SIGN_UP_TRANSITIONS, attempt.status, SignUpStatus.ABANDONED)
    else:
        check_transition(SIGN_IN_TRANSITIONS, attempt.status, SignInStatus.ABANDONED)
    verification = attempt.verification
    if verification is not None and verification.status is UNVERIFIED:
        verification = move(
            verification, VerificationStatus.FAILED, failure_reason=FailureReason.REPLACED
        )
    return attempt.bumped(now, status=_ABANDONED[type(attempt)], verification=verification)


def new_attempt(
    kind: type[P],
    client: Client,
    email: str,
    now: datetime,
    *,
    ttl: timedelta,
    purge_grace: timedelta,
    **fields: object,
) -> P:
    """A sign-up or sign-in of ``client`` for ``email``, in progress until ``now + ttl``."""
    field = "email_address" if kind is SignUp else "identifier"
    return kind.new(
        now,
        client_id=client.id,
        abandon_at=now + ttl,
        purge_after=now + ttl + purge_grace,
        **{field: email},
        **fields,
    )


def start_attempt(
    client: Client,
    attempt: SignUp | SignIn,
    previous: SignUp | SignIn | None,
    *,
    now: datetime,
    client_ttl: timedelta,
    other: SignUp | SignIn | None = None,
) -> list[Change]:
    """The changes that make ``attempt`` the client's current one of its kind; ``previous`` (the
    client's current one, if still in progress) is abandoned in the same batch, and so is
    ``other`` (the client's current attempt of the other kind) when it is in progress for the
    same address: a person who switched from signing up to signing in (or back) has one live
    link in their mailbox, the newest."""
    field = "sign_up_id" if isinstance(attempt, SignUp) else "sign_in_id"
    changes: list[Change] = [
        Insert(attempt),
        Update(
            client.bumped(
                now, **{field: attempt.id}, last_active_at=now, purge_after=now + client_ttl
            )
        ),
    ]
    if previous is not None and in_progress(previous):
        changes.append(Update(abandon(previous, now)))
    if other is not None and in_progress(other) and email_of(other) == email_of(attempt):
        changes.append(Update(abandon(other, now)))
    return changes


# -- clicks ------------------------------------------------------------------------------------


def judge_click(
    *,
    link: Link,
    attempt: Attempt,
    clicking_client_id: str | None,
    policy: CrossDevicePolicy,
    confirmation_code: str | None,
    max_code_attempts: int,
    now: datetime,
    confirmed: bool = True,
) -> ClickDecision:
    """Decide what a click on ``link`` does, given the attempt it belongs to.

    ``confirmed``: whether another client acted on purpose (the landing's confirm button, a
    POST). Opening the link (a GET or HEAD: a person, but as well a mail scanner or a link
    preview) is not: from another client it completes nothing, under any policy.
    """
    same_client = clicking_client_id is not None and hmac.compare_digest(
        clicking_client_id, link.client_id
    )
    verification = attempt.verification
    # the app that asked may show its own page for a dead link (and resend from there); anyone
    # else gets the generic page, so a scanner is never sent into the app
    back_to = verification.redirect_url if same_client and verification is not None else None

    if link.consumed_at is not None:
        if clicking_client_id is not None and completed_by(attempt, link):
            by = link.consumed_by_client
            if same_client or (by is not None and hmac.compare_digest(clicking_client_id, by)):
                return ClickDecision(ALREADY_COMPLETE, same_client)
        return _failed(same_client, "This link has already been used.", back_to)
    if verification is None or verification.link_id != link.id:
        return _failed(same_client, "A newer link was sent; use that one.", back_to)
    if now >= link.expire_at or effective_status(verification, now) is EXPIRED:
        expired = min(link.expire_at, verification.expire_at)
        return _rejected(same_client, MagicLinkExpiredError(expired, redirect_url=back_to))
    if verification.status is CLIENT_MISMATCH:
        return _rejected(same_client, ClientMismatchError(redirect_url=back_to))
    reason = verification.failure_reason
    if reason is WRONG_CODES or reason is WRONG_EMAIL_CODES:
        # said so on every later opening too: the device that typed them learns why, and a
        # link whose email's code was guessed at on the device that asked says so wherever
        spent = TooManyConfirmationCodesError(kind_of(attempt), redirect_url=back_to)
        return _rejected(same_client, spent)
    if not in_progress_at(attempt, now) or verification.status is not UNVERIFIED:
        return _failed(same_client, "This link can no longer be used.", back_to)

    if same_client or (policy is CrossDevicePolicy.ALLOW and confirmed):
        return completing(verification, link, clicking_client_id, "email_link", same_client, now)
    if policy is CrossDevicePolicy.DENY:
        mismatch = move(verification, CLIENT_MISMATCH)
        return _rejected(same_client, ClientMismatchError(), mismatch)
    if policy is CrossDevicePolicy.ALLOW:
        return ClickDecision(NEEDS_CONFIRMATION, same_client)
    if confirmation_code is None:
        return ClickDecision(NEEDS_CONFIRMATION, same_client, needs_code=True)
    if hmac.compare_digest(
        typed_code(confirmation_code).encode(), verification.confirmation_code.encode()
    ):
        return completing(verification, link, clicking_client_id, "email_link", same_client, now)
    return count_wrong_code(
        verification,
        same_client=same_client,
        tries_field="failed_code_attempts",
        limit=max_code_attempts,
        reason=FailureReason.CONFIRMATION_CODES,
        last=TooManyConfirmationCodesError(kind_of(attempt)),
        wrong=ConfirmationCodeError,
    )


def _rejected(
    same_client: bool,
    error: MagicLinkError | ConfirmationCodeError,
    changed: Verification | None = None,
) -> ClickDecision:
    return ClickDecision(REJECTED, same_client, verification=changed, error=error)


def _failed(same_client: bool, message: str, back_to: str | None) -> ClickDecision:
    return _rejected(same_client, MagicLinkFailedError(message, redirect_url=back_to))


def completing(
    verification: Verification,
    link: Link | None,
    client_id: str | None,
    verified_with: Strategy,
    same_client: bool,
    now: datetime,
) -> ClickDecision:
    """A click or code that completes: the verification VERIFIED by ``client_id``, the link
    consumed (if unused)."""
    return ClickDecision(
        COMPLETE,
        same_client,
        verification=move(
            verification,
            VERIFIED,
            verified_at=now,
            verified_at_client=client_id,
            verified_with=verified_with,
        ),
        link=(
            link.bumped(now, consumed_at=now, consumed_by_client=client_id)
            if link is not None and link.consumed_at is None
            else None
        ),
    )


def completed_by(attempt: Attempt, link: Link) -> bool:
    """Whether ``attempt`` was completed with ``link``'s verification (by the link, or by the
    code emailed with it)."""
    v = attempt.verification
    return (
        v is not None and v.link_id == link.id and v.status is VERIFIED and not in_progress(attempt)
    )


def count_wrong_code(
    verification: Verification,
    *,
    same_client: bool,
    tries_field: Literal["failed_code_attempts", "failed_email_code_attempts"],
    limit: int,
    reason: FailureReason,
    last: MagicLinkFailedError,
    wrong: Callable[..., ConfirmationCodeError | EmailCodeError],
) -> ClickDecision:
    """A wrong code (either kind): one try fewer, counted on the verification; the last allowed
    one fails it (``last``, for ``reason``), link and code alike."""
    tries = getattr(verification, tries_field) + 1
    if tries >= limit:
        changed = move(
            verification, VerificationStatus.FAILED, failure_reason=reason, **{tries_field: tries}
        )
        error: MagicLinkError | ConfirmationCodeError | EmailCodeError = last
    else:
        changed = verification.model_copy(update={tries_field: tries})
        error = wrong(attempts_left=limit - tries)
    return ClickDecision(REJECTED, same_client, verification=changed, error=error)
