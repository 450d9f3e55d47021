"""Email address rules: validation and normalisation with ``email-validator`` (no DNS here).

One canonical form per mailbox, or the address is refused: lookups, uniqueness and the
envelope recipient all use it, so no spelling of an address can reach another person's links.
Refused, beyond what ``email-validator`` refuses (lists with ``,`` or ``;``, quoted local parts,
display names, the full-width at-sign U+FF20):

- a local part longer than 64 octets (RFC 5321), or an address longer than 254 octets, also in
  the ASCII form of its domain;
- a local part that Unicode compatibility normalisation (NFKC) would change (full-width letters for
  ``ann``, ligatures): mail systems disagree on whether such spellings are one mailbox.

The limits hold for the canonical form, the one stored and sent to: lower-casing can lengthen
an address (``"İ"`` is ``"i"`` + U+0307, 2 octets to 3), so they are checked after it.

An internationalised domain is kept as typed (Unicode) for people to read and sent to in its
ASCII form (:func:`envelope_address`).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidEmailError

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_OCTETS = 64


def normalise_email(raw: object) -> str:
    """The canonical form of an address, used for lookups and uniqueness.

    ``email-validator`` checks the syntax and normalises the domain (IDNA, case); the whole address
    is then lower-cased, since no mail provider people use treats the local part's case as
    significant and two accounts for ``Ann@x.org`` and ``ann@x.org`` would be a support ticket.
    Deliverability (DNS) checks are I/O and happen in the service, when configured.

    :raises InvalidEmailError: not one plain address, or an ambiguous spelling of one.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidEmailError(long_message="Enter an email address.")
    candidate = raw.strip()
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmailError(long_message="That email address is too long.")
    return _canonical(candidate)


@lru_cache(maxsize=4096)
def _canonical(candidate: str) -> str:
    """The rule itself, remembered for the addresses seen lately: validating an address with
    ``email-validator`` took a sixth of a whole sign-in's time, and the answer never changes
    (a refusal raises, and is never remembered)."""
    try:
        info = validate_email(candidate, check_deliverability=False, allow_display_name=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(long_message=str(exc)) from exc
    _check_spelling(info.local_part)  # as typed: the Kelvin sign is refused, not made a "k"
    canonical = info.normalized.lower()
    local, _, _ = canonical.rpartition("@")
    _check_spelling(local)  # as stored
    if len(local.encode()) > MAX_LOCAL_PART_OCTETS:
        raise InvalidEmailError(
            long_message="The part before the @ is too long (at most 64 characters)."
        )
    longest = max(len(canonical.encode()), len(f"{local}@{info.ascii_domain}".encode()))
    if longest > MAX_EMAIL_LENGTH:
        raise InvalidEmailError(long_message="That email address is too long.")
    return canonical


def _check_spelling(local: str) -> None:
    if unicodedata.normalize("NFKC", local) != local:
        raise InvalidEmailError(
            long_message="The part before the @ has look-alike characters (such as full-width "
            "letters); type it with plain characters."
        )


def envelope_address(canonical: str) -> str:
    """Where the mail goes: ``canonical`` with an internationalised domain in its ASCII form
    (``ann@xn--bcher-kva.example`` for ``ann@bücher.example``). A non-ASCII local part stays
    as it is (it needs SMTPUTF8 either way)."""
    local, _, domain = canonical.rpartition("@")
    if domain.isascii():
        return canonical
    info = validate_email(canonical, check_deliverability=False)
    return f"{local}@{info.ascii_domain}"
