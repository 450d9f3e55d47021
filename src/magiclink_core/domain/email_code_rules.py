"""The code in the email, typed on the device that asked: what typing it does.

The second way to complete a verification (the first is the click, ``flows.judge_click``): the
same :class:`~.flows.ClickDecision`, so completing by code or by link is one path afterwards.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from .errors import (
    ClientMismatchError,
    EmailCodeError,
    MagicLinkError,
    MagicLinkExpiredError,
    MagicLinkFailedError,
)
from .flows import (
    REJECTED,
    ClickDecision,
    completing,
    count_wrong_code,
    effective_status,
    in_progress_at,
)
from .models import Attempt, FailureReason, Link, Verification, VerificationStatus


def judge_email_code(
    *,
    attempt: Attempt,
    link: Link | None,
    typed_digests: list[str],
    client_id: str,
    max_attempts: int,
    now: datetime,
) -> ClickDecision:
    """Decide what typing the emailed code does. ``typed_digests`` are the typed code's keyed
    digests under every key (bound to this verification); ``link`` is the verification's link,
    consumed too when the code completes. Only the client that started the attempt may type its
    code; a wrong one counts, and the last allowed wrong one fails the verification (link and
    code alike)."""
    verification = attempt.verification
    same_client = attempt.client_id is not None and hmac.compare_digest(
        client_id, attempt.client_id
    )

    def reject(
        error: MagicLinkError | EmailCodeError, changed: Verification | None = None
    ) -> ClickDecision:
        return ClickDecision(REJECTED, same_client, verification=changed, error=error)

    if not same_client:
        return reject(ClientMismatchError("Type this code on the device where you asked for it."))
    if verification is None or verification.email_code_digest is None:
        return reject(MagicLinkFailedError("No code was sent for this; use the link instead."))
    if effective_status(verification, now) is VerificationStatus.EXPIRED:
        return reject(MagicLinkExpiredError(verification.expire_at, what="code"))
    if not in_progress_at(attempt, now) or verification.status is not VerificationStatus.UNVERIFIED:
        return reject(MagicLinkFailedError("This code can no longer be used."))
    stored = verification.email_code_digest
    matched = False
    for digest in typed_digests:  # every key is tried: the time does not depend on which matched
        matched |= hmac.compare_digest(digest, stored)
    if matched:
        return completing(verification, link, client_id, "email_code", same_client, now)
    return count_wrong_code(
        verification,
        same_client=same_client,
        tries_field="failed_email_code_attempts",
        limit=max_attempts,
        reason=FailureReason.EMAIL_CODES,
        last=MagicLinkFailedError(
            "Too many wrong codes: ask for a new email.",
            long_message="Too many wrong codes were typed, so this code and its link no "
            "longer work. Ask for a new email.",
        ),
        wrong=EmailCodeError,
    )
