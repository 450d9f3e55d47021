"""The state machines of sign-up, sign-in, email-address verification and sessions.

Model
-----
An *attempt* (a sign-up, a sign-in, or an email address being verified) belongs to the client
that started it and carries at most one live :class:`Verification`. Preparing a verification
emails a link; the link's token is stored only as a digest, which the verification records as
``link_id``: a newer link replaces the older one. A click on a link is judged here, without I/O:

    link used / superseded / attempt not waiting  ->  failed
    link past its expiry                           ->  expired
    clicked by the starting client                 ->  verified, attempt complete
    clicked by another client:
        policy allow                               ->  verified, attempt complete
        policy deny                                ->  client_mismatch, nothing completes
        policy confirm, no code yet                ->  ask for the code (nothing changes)
        policy confirm, right code                 ->  verified, attempt complete
        policy confirm, wrong code                 ->  one try fewer; the last one fails the link

Everything here takes records and the time and returns new records; ``service.py`` reads and
writes them, each once-only change as one atomic storage operation. The tables below are the
whole of the allowed transitions: anything else raises and changes nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from .errors import (
    ConfirmationCodeError,
    InvalidStateError,
    MagicLinkError,
    MagicLinkErrorCode,
    MagicLinkExpiredError,
)
from .models import (
    CrossDevicePolicy,
    Link,
    Session,
    SessionStatus,
    SignInStatus,
    SignUpStatus,
    Verification,
    VerificationStatus,
)

S = TypeVar("S", bound=StrEnum)

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
    requested_by: object,
) -> Verification:
    """A fresh, waiting verification for a link just minted."""
    return Verification.model_validate(
        {
            "expire_at": now + ttl,
            "redirect_url": redirect_url,
            "link_id": link_id,
            "confirmation_code": confirmation_code,
            "requested_by": requested_by,
            "requested_at": now,
        }
    )


def effective_status(verification: Verification, now: datetime) -> VerificationStatus:
    """The status as a reader should see it: a waiting verification past its time is expired."""
    if verification.status is VerificationStatus.UNVERIFIED and now >= verification.expire_at:
        return VerificationStatus.EXPIRED
    return verification.status


def as_of(verification: Verification, now: datetime) -> Verification:
    """``verification`` with its effective status (expiry needs no write to be seen)."""
    status = effective_status(verification, now)
    if status is verification.status:
        return verification
    return verification.model_copy(update={"status": status})


def _move(
    verification: Verification, status: VerificationStatus, **changes: object
) -> Verification:
    check_transition(VERIFICATION_TRANSITIONS, verification.status, status)
    return verification.model_copy(update={"status": status, **changes})


class ClickOutcome(StrEnum):
    COMPLETE = "complete"
    NEEDS_CONFIRMATION = "needs_confirmation"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ClickDecision:
    """What a click does. For ``REJECTED``, ``error`` says why; ``verification``, when not None,
    is the attempt's new verification to store (a wrong code counted, a mismatch recorded)."""

    outcome: ClickOutcome
    same_client: bool
    verification: Verification | None = None
    link: Link | None = None
    error: Exception | None = None


def judge_click(
    *,
    link: Link,
    verification: Verification | None,
    clicking_client_id: str | None,
    policy: CrossDevicePolicy,
    confirmation_code: str | None,
    max_code_attempts: int,
    now: datetime,
) -> ClickDecision:
    """Decide what a click on ``link`` does, given the attempt's current verification."""
    same_client = clicking_client_id is not None and hmac.compare_digest(
        clicking_client_id, link.client_id
    )

    def reject(error: Exception, verification: Verification | None = None) -> ClickDecision:
        return ClickDecision(
            ClickOutcome.REJECTED, same_client, verification=verification, error=error
        )

    if link.consumed_at is not None:
        return reject(MagicLinkError(MagicLinkErrorCode.FAILED, "This link has already been used."))
    if verification is None or verification.link_id != link.id:
        return reject(
            MagicLinkError(MagicLinkErrorCode.FAILED, "A newer link was sent; use that one.")
        )
    if now >= link.expire_at or effective_status(verification, now) is VerificationStatus.EXPIRED:
        return reject(MagicLinkExpiredError(min(link.expire_at, verification.expire_at)))
    if verification.status is VerificationStatus.CLIENT_MISMATCH:
        return reject(MagicLinkError(MagicLinkErrorCode.CLIENT_MISMATCH))
    if verification.status is not VerificationStatus.UNVERIFIED:
        return reject(MagicLinkError(MagicLinkErrorCode.FAILED, "This link can no longer be used."))

    def complete() -> ClickDecision:
        return ClickDecision(
            ClickOutcome.COMPLETE,
            same_client,
            verification=_move(
                verification,
                VerificationStatus.VERIFIED,
                verified_at=now,
                verified_at_client=clicking_client_id,
            ),
            link=link.bumped(now, consumed_at=now, consumed_by_client=clicking_client_id),
        )

    if same_client or policy is CrossDevicePolicy.ALLOW:
        return complete()
    if policy is CrossDevicePolicy.DENY:
        return reject(
            MagicLinkError(
                MagicLinkErrorCode.CLIENT_MISMATCH,
                "Open this link on the device where you asked for it.",
            ),
            _move(verification, VerificationStatus.CLIENT_MISMATCH),
        )
    if confirmation_code is None:
        return ClickDecision(ClickOutcome.NEEDS_CONFIRMATION, same_client)
    if hmac.compare_digest(
        confirmation_code.strip().encode(), verification.confirmation_code.encode()
    ):
        return complete()
    tries = verification.failed_code_attempts + 1
    if tries >= max_code_attempts:
        return reject(
            MagicLinkError(
                MagicLinkErrorCode.FAILED,
                "Too many wrong codes: this link no longer works.",
                long_message="Too many wrong codes were typed, so this link was disabled. "
                "Ask for a new one from the device you are signing in on.",
            ),
            _move(verification, VerificationStatus.FAILED, failed_code_attempts=tries),
        )
    return reject(
        ConfirmationCodeError(attempts_left=max_code_attempts - tries),
        verification.model_copy(update={"failed_code_attempts": tries}),
    )


# -- sessions ----------------------------------------------------------------------------------


def session_expiry_reason(
    session: Session, now: datetime, idle_timeout: timedelta
) -> SessionStatus | None:
    """None for a live session; otherwise the status it has (or has reached by time)."""
    if session.status is not SessionStatus.ACTIVE:
        return session.status
    if now >= session.expire_at or now >= session.last_active_at + idle_timeout:
        return SessionStatus.EXPIRED
    return None


def needs_touch(session: Session, now: datetime, interval: timedelta) -> bool:
    """Whether a request should record activity (at most once per ``interval``)."""
    return now - session.last_active_at >= interval


def end_session(
    session: Session, now: datetime, status: SessionStatus, grace: timedelta
) -> Session:
    check_transition(SESSION_TRANSITIONS, session.status, status)
    return session.bumped(now, status=status, ended_at=now, purge_after=now + grace)
