"""What a click or a typed code does, as data: the decision the click and code rules return
(``flows.judge_click``, ``email_code_rules.judge_email_code``) and the service carries out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import ConfirmationCodeError, EmailCodeError, MagicLinkError
from .models import Link, Verification
from .quick_init import quick_init


class ClickOutcome(StrEnum):
    COMPLETE = "complete"
    NEEDS_CONFIRMATION = "needs_confirmation"
    ALREADY_COMPLETE = "already_complete"
    REJECTED = "rejected"


@quick_init
@dataclass(frozen=True, slots=True)
class ClickDecision:
    """What a click does.

    ``COMPLETE``: ``verification`` (verified) and ``link`` (consumed) go into the completion.
    ``REJECTED``: ``error`` says why (with the attempt's ``redirect_url`` on it when the starting
    client clicked, so it can be sent back to the app); ``verification``, when not None, is the
    attempt's new verification to store (a wrong code counted, a mismatch recorded).
    ``NEEDS_CONFIRMATION``: nothing changes until the clicking client confirms: with the code
    when ``needs_code``, else with one tap.
    ``ALREADY_COMPLETE``: the link was used already, by this very client or for it (its attempt
    completed by this link): a repeated click (a double tap, back and reload, a retry after an
    answer that never arrived) gets the same result again, and nothing changes.
    """

    outcome: ClickOutcome
    same_client: bool
    verification: Verification | None = None
    link: Link | None = None
    error: MagicLinkError | ConfirmationCodeError | EmailCodeError | None = None
    needs_code: bool = False
