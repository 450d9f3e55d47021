"""Session rules: how long a session lives, when a request records activity, how it ends.

Pure, as the rest of the domain: the times are passed in; the allowed status changes are the
session table of ``flows.py`` (drawn in docs/state-machines.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .flows import SESSION_TRANSITIONS, check_transition
from .models import RequestInfo, Session, SessionStatus
from .tokens import new_id


@dataclass(frozen=True, slots=True)
class SessionTerms:
    """How long sessions last: from the settings, passed in so the rules stay pure."""

    lifetime: timedelta
    idle_timeout: timedelta
    touch_interval: timedelta
    purge_grace: timedelta
    token_grace: timedelta  # how long a replaced token keeps working


def new_session(
    *,
    user_id: str,
    client_id: str,
    now: datetime,
    token_digest: str | None,
    device: RequestInfo | None,
    terms: SessionTerms,
    email_address: str = "",
    session_id: str | None = None,
) -> Session:
    """A live session of ``user_id`` on ``client_id``; without a digest until collected.
    ``email_address`` is the user's primary address, carried so nobody reads it per request;
    ``session_id`` its id when drawn with its token (default: a fresh one)."""
    expire_at = now + terms.lifetime
    return Session.new(
        now,
        id=session_id or new_id(Session.id_prefix),
        user_id=user_id,
        client_id=client_id,
        token_digest=token_digest,
        email_address=email_address,
        last_active_at=now,
        expire_at=expire_at,
        purge_after=expire_at + terms.purge_grace,
        user_agent=device.device if device else "",  # described, never the client's own text
        ip_address=device.ip_address if device else "",
    )


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


def with_new_token(session: Session, digest: str, now: datetime, grace: timedelta) -> Session:
    """``session`` given the token of ``digest`` (and its activity recorded). The token it had
    keeps working for ``grace``: the answer that carried it to the same client may still be on
    its way, and arrive after this one. One replaced token is kept: one still in its grace
    stays (the first answer of a double tap is the slow one: it completed the sign-in and ran
    the app's hooks, so a third tap does not push it out); otherwise the one replaced now."""
    if previous_token_live(session, now):
        return session.bumped(now, token_digest=digest, last_active_at=now)
    return _replacing(session, digest, now, grace)


def previous_token_live(session: Session, now: datetime) -> bool:
    """Whether the token ``session`` had before its current one still works."""
    until = session.previous_token_until
    return session.previous_token_digest is not None and until is not None and now < until


def readopt_previous(session: Session, now: datetime, grace: timedelta) -> Session:
    """``session`` with its previous token made current again: the client presented it, so it
    is the cookie that client kept (the answer that carried it came last). The token it
    replaces keeps working for ``grace`` in turn, for a request already on its way."""
    previous = session.previous_token_digest
    if previous is None:
        raise ValueError("the session has no previous token")
    return _replacing(session, previous, now, grace)


def _replacing(session: Session, digest: str, now: datetime, grace: timedelta) -> Session:
    """``session`` with the token of ``digest``, its current one kept for ``grace``."""
    kept = session.token_digest if grace > timedelta(0) else None
    return session.bumped(
        now,
        token_digest=digest,
        previous_token_digest=kept,
        previous_token_until=None if kept is None else now + grace,
        last_active_at=now,
    )


def end_session(
    session: Session, now: datetime, status: SessionStatus, grace: timedelta
) -> Session:
    check_transition(SESSION_TRANSITIONS, session.status, status)
    return session.bumped(now, status=status, ended_at=now, purge_after=now + grace)
