"""The rules of a signed-in user's account changes (adding, removing or making primary an
address): who may make one, who hears of it, which link dies with it. Pure: records and the time
in, answers (and changes to write) out.

    change needs     a session created within ``reverification_window`` (None: any session);
                     an older one is refused (``reverification_required``) until the person
                     signs in again with a fresh link or code, which makes a new session
    change tells     every other verified address of the user, by email
    removed address  its pending verification link dies with it (in the same write)
    replaced primary its pending verification link dies too (a verified address has none)
    sessions         stay: the change was made from a recent sign-in, and ending every session
                     on each edit would sign the person out everywhere; if the change was not
                     theirs, the email tells them, and ``revoke_sessions`` ends the rest
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .changes import Change, Delete
from .models import EmailAddress, Link, Session


def reverification_needed(session: Session, now: datetime, window: timedelta | None) -> bool:
    """Whether ``session`` is too old to change the account's addresses."""
    return window is not None and now - session.created_at > window


def to_notify(addresses: Iterable[EmailAddress], changed: EmailAddress) -> list[str]:
    """The user's verified addresses other than ``changed``, which hear of the change."""
    return [a.email for a in addresses if a.verified and a.id != changed.id]


def pending_link_of(address: EmailAddress) -> str | None:
    """The id of the address's newest verification link, if it has one (it may be pending)."""
    return address.verification.link_id if address.verification is not None else None


def withdraw(link: Link | None) -> list[Change]:
    """The change that kills ``link``, if it is still unused (a used one stays, so a late click
    still reads "already used")."""
    if link is None or link.consumed_at is not None:
        return []
    return [Delete(Link, link.id, link.version)]
