"""What happened, as data: the events the service publishes to the app's hooks.

Successes (a user created, a sign-in completed, an address added) and refusals alike, so an app
can keep an audit trail from hooks alone. Refusals (:data:`REFUSALS`) are also logged at warning
level by the hooks, with their reason and never a token or a code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .quick_init import quick_init


class Event(StrEnum):
    USER_CREATED = "user_created"
    SIGN_UP_COMPLETED = "sign_up_completed"
    SIGN_IN_COMPLETED = "sign_in_completed"
    EMAIL_ADDRESS_VERIFIED = "email_address_verified"
    SESSION_CREATED = "session_created"
    SESSION_ENDED = "session_ended"
    # a signed-in user's account changes (each also emails the user's other verified addresses)
    EMAIL_ADDRESS_ADDED = "email_address_added"
    EMAIL_ADDRESS_REMOVED = "email_address_removed"
    PRIMARY_EMAIL_ADDRESS_CHANGED = "primary_email_address_changed"
    # refusals and failures: ``reason`` says why (an error code, or the limit's setting name)
    LINK_REFUSED = "link_refused"
    EMAIL_CODE_REFUSED = "email_code_refused"
    RATE_LIMITED = "rate_limited"
    MAIL_UNDELIVERABLE = "mail_undeliverable"
    SIGN_IN_VETOED = "sign_in_vetoed"
    SIGN_UP_VETOED = "sign_up_vetoed"
    REVERIFICATION_REQUIRED = "reverification_required"


REFUSALS = frozenset(
    {
        Event.LINK_REFUSED,
        Event.EMAIL_CODE_REFUSED,
        Event.RATE_LIMITED,
        Event.MAIL_UNDELIVERABLE,
        Event.SIGN_IN_VETOED,
        Event.SIGN_UP_VETOED,
        Event.REVERIFICATION_REQUIRED,
    }
)
"""The events of something refused or failed: logged at warning as well as emitted."""


@quick_init
@dataclass(frozen=True, slots=True)
class AuthEvent:
    """What happened. Fields not relevant to an event are None.

    ``reason`` says why a refusal happened: the error code (``expired``, ``failed``,
    ``client_mismatch``, ``confirmation_code_incorrect``, ``email_code_incorrect``), the name of
    the limit that was hit (``links_per_ip``, ...), or the kind of an email that could not be
    sent. ``ip_address`` is the client IP of the request, when the web layer passed it.
    """

    event: Event
    user_id: str | None = None
    session_id: str | None = None
    email_address: str | None = None
    attempt_id: str | None = None
    client_id: str | None = None
    reason: str | None = None
    ip_address: str | None = None
