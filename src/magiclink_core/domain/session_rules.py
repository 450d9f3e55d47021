"""Session rules: how long a session lives, when a request records activity, how it ends.

Pure, as the rest of the domain: the times are passed in; the allowed status changes are the
session table of ``flows.py`` (drawn in docs/state-machines.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .flows import SESSION_TRANSITIONS, check_transition
from .models import RequestInfo, Session, SessionStatus


@dataclass(frozen=True, slots=True)
class SessionTerms:
    """How long sessions last: from the settings, passed in so the rules stay pure."""

    lifetime: timedelta
    idle_timeout: timedelta
    touch_interval: timedelta
    purge_grace: timedelta


def new_session(
    *,
    user_id: str,
    client_id: str,
    now: datetime,
    token_digest: str | None,
    device: RequestInfo | None,
    terms: SessionTerms,
    email_address: str = "",
) -> Session:
    """A live session of ``user_id`` on ``client_id``; without a digest until collected.
    ``email_address`` is the user's primary address, carried so nobody reads it per request."""
    expire_at = now + terms.lifetime
    return Session.new(
        now,
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


def end_session(
    session: Session, now: datetime, status: SessionStatus, grace: timedelta
) -> Session:
    check_transition(SESSION_TRANSITIONS, session.status, status)
    return session.bumped(now, status=status, ended_at=now, purge_after=now + grace)
