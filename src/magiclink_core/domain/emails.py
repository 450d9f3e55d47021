"""Email address rules: validation and normalisation with ``email-validator`` (no DNS here)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidEmailError

MAX_EMAIL_LENGTH = 254


def normalise_email(raw: object) -> str:
    """The canonical form of an address, used for lookups and uniqueness.

    ``email-validator`` checks the syntax and normalises the domain (IDNA, case); the whole address
    is then lower-cased, since no mail provider people use treats the local part's case as
    significant and two accounts for ``Ann@x.org`` and ``ann@x.org`` would be a support ticket.
    Deliverability (DNS) checks are I/O and happen in the service, when configured.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidEmailError(long_message="Enter an email address.")
    candidate = raw.strip()
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmailError(long_message="That email address is too long.")
    try:
        info = validate_email(candidate, check_deliverability=False, allow_display_name=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(long_message=str(exc)) from exc
    return info.normalized.lower()
