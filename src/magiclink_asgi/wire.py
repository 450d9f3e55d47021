"""The JSON shapes of the API (docs/http-api.md), in the hosted service's names: records in,
plain dicts out. Times are milliseconds since the Unix epoch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from magiclink_core import (
    EmailAddress,
    FirstFactor,
    Session,
    SignIn,
    SignUp,
    User,
    Verification,
    verified_from_the_same_client,
)


def ms(value: datetime | None) -> int | None:
    """Milliseconds since the Unix epoch."""
    return None if value is None else int(value.timestamp() * 1000)


def verification_json(attempt: SignIn | SignUp | EmailAddress) -> dict[str, Any] | None:
    v: Verification | None = attempt.verification
    if v is None:
        return None
    return {
        "object": "verification",
        "strategy": v.strategy,
        "supported_strategies": supported_strategies(v),
        "status": v.status.value,
        "expire_at": ms(v.expire_at),
        "verified_at_client": v.verified_at_client,
        "verified_from_the_same_client": verified_from_the_same_client(attempt),
        "confirmation_code": v.confirmation_code,
        "redirect_url": v.redirect_url,
        "failure_reason": None if v.failure_reason is None else v.failure_reason.value,
    }


def supported_strategies(v: Verification) -> list[str]:
    """What the verification's email carries, so a page knows what to offer: ``email_link``
    (its strategy is the link's) and ``email_code`` (it has a code's digest; a sign-in of an
    address with no account has one too, so the page looks the same either way)."""
    carried = ["email_link"] if v.strategy == "email_link" else []
    if v.email_code_digest is not None:
        carried.append("email_code")
    return carried


def _attempt_json(name: str, attempt: SignIn | SignUp, **fields: Any) -> dict[str, Any]:
    return {
        "object": name,
        "id": attempt.id,
        "status": attempt.status.value,
        **fields,
        "created_session_id": attempt.created_session_id,
        "version": attempt.version,
    }


def sign_in_json(sign_in: SignIn, first_factors: Sequence[FirstFactor]) -> dict[str, Any]:
    factors = [
        {
            "strategy": f.strategy,
            "safe_identifier": f.safe_identifier,
            "email_address_id": f.email_address_id,
        }
        for f in first_factors
    ]
    return _attempt_json(
        "sign_in",
        sign_in,
        identifier=sign_in.identifier,
        supported_first_factors=factors,
        first_factor_verification=verification_json(sign_in),
    )


def sign_up_json(sign_up: SignUp) -> dict[str, Any]:
    return _attempt_json(
        "sign_up",
        sign_up,
        email_address=sign_up.email_address,
        verifications={"email_address": verification_json(sign_up)},
        created_user_id=sign_up.created_user_id,
    )


def email_address_json(address: EmailAddress, primary_id: str | None) -> dict[str, Any]:
    return {
        "object": "email_address",
        "id": address.id,
        "email_address": address.email,
        "verified": address.verified,
        "primary": address.id == primary_id,
        "verification": verification_json(address),
        "version": address.version,
    }


def session_json(session: Session, current_id: str | None) -> dict[str, Any]:
    return {
        "object": "session",
        "id": session.id,
        "status": session.status.value,
        "user_id": session.user_id,
        "last_active_at": ms(session.last_active_at),
        "expire_at": ms(session.expire_at),
        "user_agent": session.user_agent,
        "ip_address": session.ip_address,
        "current": session.id == current_id,
    }


def user_json(user: User, addresses: list[EmailAddress]) -> dict[str, Any]:
    return {
        "object": "user",
        "id": user.id,
        "primary_email_address_id": user.primary_email_address_id,
        "email_addresses": [
            email_address_json(a, user.primary_email_address_id) for a in addresses
        ],
        "created_at": ms(user.created_at),
    }
