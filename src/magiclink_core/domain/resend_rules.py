"""The expired-link page's resend: when a link may be renewed.

A resend emails a fresh link for the attempt of the link it is given, and so replaces the
attempt's verification: the link in the inbox stops working. It is for a link whose time ran
out (or one superseded by a newer link that ran out in its turn), never one that still works:
that would only kill it. Holding the old link proves nothing new; the new link goes to the same
mailbox, so a resend reveals nothing either.

    link used, attempt not in progress, no verification  ->  failed: nothing to renew
    the attempt's newest link or code still works         ->  invalid_state: use it
                                                              (LinkStillWorksError)
    its verification expired, or its email never went     ->  renewed
    its verification failed or was refused otherwise      ->  failed: start again
"""

from __future__ import annotations

from datetime import datetime

from .errors import AuthError, LinkStillWorksError, MagicLinkFailedError
from .flows import effective_status, in_progress_at
from .models import Attempt, FailureReason, Link, VerificationStatus


def judge_resend(link: Link, attempt: Attempt, now: datetime) -> AuthError | None:
    """Why ``link`` may not be renewed at ``now`` (the error to raise, nothing changed), or
    None when a fresh link may replace it."""
    verification = attempt.verification
    if link.consumed_at is not None or verification is None or not in_progress_at(attempt, now):
        return MagicLinkFailedError("This link can no longer be renewed.")
    status = effective_status(verification, now)
    if verification.link_id == link.id and now >= link.expire_at:
        status = VerificationStatus.EXPIRED  # the link's own time ran out (it may end first)
    if status is VerificationStatus.UNVERIFIED:
        return LinkStillWorksError(newer=verification.link_id != link.id)
    if status is VerificationStatus.EXPIRED or (
        status is VerificationStatus.FAILED
        and verification.failure_reason is FailureReason.UNDELIVERABLE
    ):
        return None
    return MagicLinkFailedError("This link can no longer be renewed.")
