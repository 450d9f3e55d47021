"""What happened, as data: the events a completed step publishes to the app's hooks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Event(StrEnum):
    USER_CREATED = "user_created"
    SIGN_UP_COMPLETED = "sign_up_completed"
    SIGN_IN_COMPLETED = "sign_in_completed"
    EMAIL_ADDRESS_VERIFIED = "email_address_verified"
    SESSION_CREATED = "session_created"
    SESSION_ENDED = "session_ended"


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """What happened. Fields not relevant to an event are None."""

    event: Event
    user_id: str | None = None
    session_id: str | None = None
    email_address: str | None = None
    attempt_id: str | None = None
    client_id: str | None = None
