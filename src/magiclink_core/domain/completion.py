"""What completing an attempt writes and announces: a rule of the state machines, kept pure.

A verified click, or the right emailed code, completes its attempt. :func:`complete`
takes the attempt, the click's decision and the time, plus what the service read for it (the
account that holds the address), and returns every record to write as one batch and every event
to publish once that batch is stored. The service applies the batch with one atomic
``Storage.apply``: the link is consumed, the attempt completed, the user, address and session
created, all or nothing.

    sign-up   address unclaimed -> new user + verified primary address + session
              address claimed   -> session for its owner (enumeration protection: a sign-up
                                   of a taken address signs its owner in)
    sign-in   address claimed   -> session for its owner
              address gone      -> failed: nothing to sign in to
    either    the starting client's other live sessions end in the same batch (signing in
              again on a browser ends what it was signed in with before)
    address   verified          -> claimed by its user; primary if the user had none
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .changes import Change, Insert, Update
from .errors import MagicLinkFailedError
from .events import AuthEvent, Event
from .flows import (
    COMPLETE,
    SIGN_IN_TRANSITIONS,
    SIGN_UP_TRANSITIONS,
    ClickDecision,
    check_transition,
    email_of,
)
from .models import (
    Attempt,
    EmailAddress,
    FailureReason,
    Link,
    RequestInfo,
    Session,
    SessionStatus,
    SignIn,
    SignInStatus,
    SignUp,
    SignUpStatus,
    User,
    Verification,
    VerificationStatus,
)
from .quick_init import quick_init
from .session_rules import SessionTerms, end_session, new_session, session_expiry_reason
from .tokens import new_id

SIGN_UP_COMPLETE: Final = SignUpStatus.COMPLETE  # read once: see flows.COMPLETE
SIGN_IN_COMPLETE: Final = SignInStatus.COMPLETE


@quick_init
@dataclass(frozen=True, slots=True)
class Completion:
    """A completed attempt: the batch to store atomically and the events to publish after."""

    attempt: Attempt
    verification: Verification
    changes: tuple[Change, ...]
    events: tuple[AuthEvent, ...]
    session: Session | None = None  # the session created for the starting client
    ended: tuple[str, ...] = ()  # the client's live sessions this completion ends (their ids)


def complete(
    attempt: Attempt,
    decision: ClickDecision,
    *,
    now: datetime,
    account: EmailAddress | None,
    user: User | None,
    session_token_digest: str | None,
    device: RequestInfo | None,
    session_id: str | None = None,
    terms: SessionTerms,
    primary_email: str | None = None,
    client_sessions: Sequence[Session] = (),
    announce: bool = True,
) -> Completion:
    """Complete ``attempt`` after ``decision`` (outcome ``COMPLETE``).

    :param account: for a sign-up or sign-in, the verified address holding the attempt's email,
        read just before (None when no account has it).
    :param user: for an email address, the user it belongs to.
    :param session_token_digest: the new session's token digest when the starting client itself
        clicked (it gets the token now); None for a click elsewhere (the session is collected
        later by the starting client).
    :param session_id: the new session's id, when it was drawn with its token (default: a
        fresh one).
    :param device: what to remember about where the session was asked for.
    :param primary_email: the account's primary address, which the session carries (default:
        the address just verified).
    :param client_sessions: the starting client's sessions, read just before: a sign-up or
        sign-in ends the live ones (one browser, one session).
    :param announce: whether to make the events; False when nobody listens (no hook is
        registered: completing announces no refusal, so there is nothing to log either).
    :raises MagicLinkFailedError: a sign-in whose account is gone.
    :raises InvalidStateError: the decision or attempt does not allow completing.
    """
    if decision.outcome is not COMPLETE or decision.verification is None:
        raise ValueError("only a decision of COMPLETE completes an attempt")
    verification, link = decision.verification, decision.link
    if isinstance(attempt, EmailAddress):
        if user is None or user.id != attempt.user_id:
            raise ValueError("an address is completed with the user it belongs to")
        return _verify_address(attempt, verification, link, user, now, announce)
    # sign-up and sign-in end alike: a session for the address's user, made if need be; the
    # client's sessions before it end
    email = email_of(attempt)
    client_id = attempt.client_id  # the session is always the starting client's
    changes: list[Change] = _consumed(link)
    created_user = False
    if account is not None:
        user_id = account.user_id
    elif isinstance(attempt, SignIn):
        # the account's address was removed or it never existed: nothing to sign in to
        raise MagicLinkFailedError("This account no longer exists.")
    else:
        user_id = new_id(User.id_prefix)
        changes += _new_user(user_id, email, verification, client_id, now)
        created_user = True
    session = new_session(
        user_id=user_id,
        client_id=client_id,
        now=now,
        token_digest=session_token_digest,
        device=device,
        terms=terms,
        email_address=primary_email or email,
        session_id=session_id,
    )
    changes.append(Insert(session))
    ended: list[Session] = []
    for old in client_sessions:
        if old.client_id != client_id or session_expiry_reason(old, now, terms.idle_timeout):
            continue  # another client's, or over already
        changes.append(Update(end_session(old, now, SessionStatus.ENDED, terms.purge_grace)))
        ended.append(old)
    if isinstance(attempt, SignUp):
        check_transition(SIGN_UP_TRANSITIONS, attempt.status, SIGN_UP_COMPLETE)
        done: SignUp | SignIn = attempt.bumped(
            now,
            status=SIGN_UP_COMPLETE,
            verification=verification,
            created_user_id=user_id,
            created_session_id=session.id,
        )
        completed = Event.SIGN_UP_COMPLETED
    else:
        check_transition(SIGN_IN_TRANSITIONS, attempt.status, SIGN_IN_COMPLETE)
        done = attempt.bumped(
            now,
            status=SIGN_IN_COMPLETE,
            verification=verification,
            created_session_id=session.id,
        )
        completed = Event.SIGN_IN_COMPLETED
    changes.append(Update(done))
    ended_ids = tuple([old.id for old in ended]) if ended else ()
    if not announce:
        return Completion(done, verification, tuple(changes), (), session, ended_ids)
    events: list[AuthEvent] = []
    if created_user:
        events.append(AuthEvent(Event.USER_CREATED, user_id=user_id, email_address=email))
    events += [
        AuthEvent(Event.SESSION_ENDED, user_id=old.user_id, session_id=old.id, client_id=client_id)
        for old in ended
    ]
    events += [
        AuthEvent(
            completed,
            user_id=user_id,
            session_id=session.id,
            attempt_id=attempt.id,
            email_address=email,
            client_id=client_id,
        ),
        AuthEvent(
            Event.SESSION_CREATED, user_id=user_id, session_id=session.id, client_id=client_id
        ),
    ]
    return Completion(done, verification, tuple(changes), tuple(events), session, ended_ids)


def _consumed(link: Link | None) -> list[Change]:
    """The link consumed with the verification (none when the email carried no link)."""
    return [] if link is None else [Update(link)]


def _verify_address(
    address: EmailAddress,
    verification: Verification,
    link: Link | None,
    user: User,
    now: datetime,
    announce: bool,
) -> Completion:
    done = address.bumped(now, verification=verification, claimed_email=address.email)
    changes: list[Change] = [*_consumed(link), Update(done)]
    if user.primary_email_address_id is None:
        changes.append(Update(user.bumped(now, primary_email_address_id=address.id)))
    if not announce:
        return Completion(done, verification, tuple(changes), ())
    event = AuthEvent(
        Event.EMAIL_ADDRESS_VERIFIED,
        user_id=address.user_id,
        email_address=address.email,
        attempt_id=address.id,
    )
    return Completion(done, verification, tuple(changes), (event,))


def _new_user(
    user_id: str, email: str, verification: Verification, client_id: str, now: datetime
) -> list[Change]:
    address = EmailAddress.new(
        now,
        user_id=user_id,
        email=email,
        claimed_email=email,
        verification=verification,
        client_id=client_id,
    )
    return [
        Insert(User.new(now, id=user_id, primary_email_address_id=address.id)),
        Insert(address),
    ]


def refuse_claim(address: EmailAddress, link: Link | None, now: datetime) -> list[Change]:
    """An address another user claimed first: its link is used up and its verification failed,
    so the person sees why instead of a link that keeps failing at random."""
    if address.verification is None:
        raise ValueError("only an address being verified can be refused")
    failed = address.verification.model_copy(
        update={"status": VerificationStatus.FAILED, "failure_reason": FailureReason.ADDRESS_TAKEN}
    )
    return [*_consumed(link), Update(address.bumped(now, verification=failed))]
