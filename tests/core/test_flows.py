"""The pure rules: how a click is judged, and which transitions exist."""

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magiclink_core import (
    ConfirmationCodeError,
    CrossDevicePolicy,
    InvalidStateError,
    MagicLinkError,
    MagicLinkExpiredError,
    MagicLinkFailedError,
    SessionStatus,
    TooManyConfirmationCodesError,
    VerificationStatus,
)
from magiclink_core.domain import flows, session_rules
from magiclink_core.domain.models import (
    AttemptKind,
    FailureReason,
    Link,
    SignIn,
    SignUp,
    Verification,
)
from magiclink_core.domain.session_rules import session_expiry_reason as expiry
from magiclink_core.testing import make_record

from ._support import NOW, click, waiting


def judge(link: Link, verification: Verification | None, **options: Any) -> flows.ClickDecision:
    """The judging of a click on ``link`` for client_a's sign-in waiting on ``verification``."""
    attempt = make_record(SignIn, client_id="client_a", verification=verification)
    return click(link, attempt, **options)


def test_the_starting_client_completes_under_every_policy() -> None:
    link, verification = waiting()
    for policy in CrossDevicePolicy:
        decision = judge(link, verification, policy=policy)
        assert decision.outcome is flows.ClickOutcome.COMPLETE and decision.same_client
        assert decision.verification is not None
        assert decision.verification.status is VerificationStatus.VERIFIED
        assert decision.verification.verified_at_client == "client_a"
        assert decision.link is not None and decision.link.consumed_at == NOW


def test_allow_completes_for_another_client() -> None:
    link, verification = waiting()
    decision = judge(link, verification, client="client_b", policy=CrossDevicePolicy.ALLOW)
    assert decision.outcome is flows.ClickOutcome.COMPLETE and not decision.same_client
    assert (
        decision.verification is not None and decision.verification.verified_at_client == "client_b"
    )


def test_deny_records_a_mismatch_and_completes_nothing() -> None:
    link, verification = waiting()
    decision = judge(link, verification, client="client_b", policy=CrossDevicePolicy.DENY)
    assert decision.outcome is flows.ClickOutcome.REJECTED and decision.link is None
    assert isinstance(decision.error, MagicLinkError) and decision.error.code == "client_mismatch"
    assert decision.verification is not None
    assert decision.verification.status is VerificationStatus.CLIENT_MISMATCH


def test_a_click_without_a_client_cookie_is_another_client() -> None:
    link, verification = waiting()
    assert judge(link, verification, client=None).outcome is flows.ClickOutcome.NEEDS_CONFIRMATION


def test_confirm_asks_for_the_code_then_takes_the_right_one() -> None:
    link, verification = waiting()
    asked = judge(link, verification, client="client_b")
    assert asked.outcome is flows.ClickOutcome.NEEDS_CONFIRMATION and asked.verification is None
    done = judge(link, verification, client="client_b", code=" 123456 ")
    assert done.outcome is flows.ClickOutcome.COMPLETE


# what people type between the digits of a code they read out: spaces, dashes, tabs
_GAPS = st.lists(
    st.sampled_from(["", " ", "-", "  ", " - ", "\t", "\u00a0"]), min_size=7, max_size=7
)


@given(_GAPS)
def test_the_confirmation_code_takes_any_spaces_and_dashes(gaps: list[str]) -> None:
    """Spaced or dashed as it is read out, the right code completes, and spends no try."""
    link, verification = waiting()
    typed = "".join(gap + digit for gap, digit in zip(gaps, "123456", strict=False)) + gaps[-1]
    decision = judge(link, verification, client="client_b", code=typed)
    assert decision.outcome is flows.ClickOutcome.COMPLETE, repr(typed)
    assert decision.verification is not None
    assert decision.verification.failed_code_attempts == 0


@given(_GAPS)
def test_a_wrong_code_spaced_out_is_still_wrong(gaps: list[str]) -> None:
    link, verification = waiting()
    typed = "".join(gap + digit for gap, digit in zip(gaps, "123457", strict=False)) + gaps[-1]
    decision = judge(link, verification, client="client_b", code=typed)
    assert isinstance(decision.error, ConfirmationCodeError) and decision.error.attempts_left == 2


def test_wrong_codes_count_down_then_fail_the_link() -> None:
    link, verification = waiting()
    first = judge(link, verification, client="client_b", code="000000")
    assert isinstance(first.error, ConfirmationCodeError) and first.error.attempts_left == 2
    assert first.verification is not None
    second = judge(link, first.verification, client="client_b", code="111111")
    assert isinstance(second.error, ConfirmationCodeError) and second.error.attempts_left == 1
    assert second.verification is not None
    third = judge(link, second.verification, client="client_b", code="222222")
    assert isinstance(third.error, MagicLinkError) and third.error.code == "failed"
    assert third.verification is not None and third.verification.status is VerificationStatus.FAILED
    # and now even the right code fails
    after = judge(link, third.verification, client="client_b", code="123456")
    assert after.outcome is flows.ClickOutcome.REJECTED


@pytest.mark.parametrize(
    ("kind", "attempt_kind"), [(SignIn, AttemptKind.SIGN_IN), (SignUp, AttemptKind.SIGN_UP)]
)
def test_a_link_failed_by_wrong_codes_says_so_with_its_attempts_kind(
    kind: type[SignIn] | type[SignUp], attempt_kind: AttemptKind
) -> None:
    """The last wrong code, and every later opening of the link by another client, say that
    wrong codes were typed (still ``failed``), and for which kind of attempt; a link that
    failed otherwise does not."""
    link, verification = waiting()
    for wrong in ("000000", "111111", "222222"):
        attempt = make_record(kind, client_id="client_a", verification=verification)
        decision = click(link, attempt, client="client_b", code=wrong)
        assert decision.verification is not None
        verification = decision.verification
    assert verification.failure_reason == "too_many_confirmation_codes"
    attempt = make_record(kind, client_id="client_a", verification=verification)
    for later in (decision, click(link, attempt, client="client_b")):
        error = later.error
        assert isinstance(error, TooManyConfirmationCodesError), error
        assert isinstance(error, MagicLinkFailedError) and error.code == "failed"
        assert error.kind is attempt_kind and error.status_hint == 422
        assert error.redirect_url is None  # the generic page: not sent into the app
    # the client that asked is sent back to its app, with the same word
    own = click(link, attempt, client="client_a")
    assert isinstance(own.error, TooManyConfirmationCodesError)
    assert own.error.redirect_url == verification.redirect_url
    replaced = verification.model_copy(update={"failure_reason": FailureReason.REPLACED})
    other = click(link, make_record(kind, client_id="client_a", verification=replaced))
    assert not isinstance(other.error, TooManyConfirmationCodesError)


def test_a_link_whose_emailed_code_was_guessed_at_says_too_many_wrong_codes() -> None:
    """The email's code typed wrong on the device that asked until the email stopped working:
    its link, opened anywhere, says wrong codes were typed (not the generic refusal), and the
    client that asked is sent back to its app."""
    link, verification = waiting()
    spent = verification.model_copy(
        update={
            "status": VerificationStatus.FAILED,
            "failure_reason": FailureReason.EMAIL_CODES,
            "failed_email_code_attempts": 5,
        }
    )
    attempt = make_record(SignIn, client_id="client_a", verification=spent)
    elsewhere = click(link, attempt, client="client_b")
    assert isinstance(elsewhere.error, TooManyConfirmationCodesError), elsewhere.error
    assert elsewhere.error.kind is AttemptKind.SIGN_IN and elsewhere.error.redirect_url is None
    own = click(link, attempt, client="client_a")
    assert isinstance(own.error, TooManyConfirmationCodesError)
    assert own.error.redirect_url == spent.redirect_url
    assert elsewhere.verification is None  # nothing to write: the refusal changes nothing


def test_an_expired_link_says_expired_with_its_time() -> None:
    link, verification = waiting()
    decision = judge(link, verification, now=NOW + timedelta(minutes=10))
    assert isinstance(decision.error, MagicLinkExpiredError)
    assert decision.error.code == "expired" and decision.error.expired_at == NOW + timedelta(
        minutes=10
    )
    assert judge(link, verification, now=NOW + timedelta(minutes=9, seconds=59)).outcome is (
        flows.ClickOutcome.COMPLETE
    )


def test_a_used_or_superseded_link_fails() -> None:
    link, verification = waiting()
    used = link.bumped(NOW, consumed_at=NOW)
    assert judge(used, verification).error is not None
    _, newer = waiting(link_id="e" * 64)
    decision = judge(link, newer)
    assert isinstance(decision.error, MagicLinkError) and decision.error.code == "failed"
    assert judge(link, None).outcome is flows.ClickOutcome.REJECTED


def test_a_link_that_outlives_its_attempt_fails_once_the_attempt_reads_abandoned() -> None:
    link, verification = waiting()
    attempt = make_record(
        SignIn,
        client_id="client_a",
        verification=verification,
        abandon_at=NOW + timedelta(minutes=5),
    )
    allowed = CrossDevicePolicy.ALLOW
    on_time = click(link, attempt, policy=allowed, now=NOW + timedelta(minutes=4))
    assert on_time.outcome is flows.ClickOutcome.COMPLETE
    late = click(link, attempt, policy=allowed, now=NOW + timedelta(minutes=5))  # 5 minutes left
    assert late.outcome is flows.ClickOutcome.REJECTED and late.verification is None
    assert isinstance(late.error, MagicLinkError) and late.error.code == "failed"


def test_expiry_is_seen_without_a_write() -> None:
    _, verification = waiting()
    assert flows.effective_status(verification, NOW) is VerificationStatus.UNVERIFIED
    later = NOW + timedelta(minutes=10)
    assert flows.as_of(verification, later).status is VerificationStatus.EXPIRED
    assert verification.status is VerificationStatus.UNVERIFIED


@pytest.mark.parametrize(
    ("table", "old", "new"),
    [
        (
            flows.VERIFICATION_TRANSITIONS,
            VerificationStatus.VERIFIED,
            VerificationStatus.UNVERIFIED,
        ),
        (flows.VERIFICATION_TRANSITIONS, VerificationStatus.EXPIRED, VerificationStatus.VERIFIED),
        (flows.SESSION_TRANSITIONS, SessionStatus.ENDED, SessionStatus.ACTIVE),
        (flows.SESSION_TRANSITIONS, SessionStatus.REVOKED, SessionStatus.ENDED),
    ],
)
def test_illegal_transitions_raise(table: dict, old: object, new: object) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidStateError):
        flows.check_transition(table, old, new)


def test_ending_an_ended_session_raises_and_changes_nothing() -> None:
    from magiclink_core.domain.models import Session

    session: Session = make_record(Session)
    ended = session_rules.end_session(session, NOW, SessionStatus.ENDED, timedelta(days=1))
    assert ended.status is SessionStatus.ENDED and ended.version == session.version + 1
    with pytest.raises(InvalidStateError):
        session_rules.end_session(ended, NOW, SessionStatus.REVOKED, timedelta(days=1))
    assert ended.status is SessionStatus.ENDED


def test_session_expiry_by_idle_time_and_by_lifetime() -> None:
    from magiclink_core.domain.models import Session

    session: Session = make_record(Session, last_active_at=NOW, expire_at=NOW + timedelta(days=30))
    idle = timedelta(days=7)
    assert expiry(session, NOW + timedelta(days=6), idle) is None
    assert expiry(session, NOW + timedelta(days=7), idle) is SessionStatus.EXPIRED
    busy = session.bumped(NOW, last_active_at=NOW + timedelta(days=29))
    assert expiry(busy, NOW + timedelta(days=29, hours=1), idle) is None
    assert expiry(busy, NOW + timedelta(days=30), idle) is SessionStatus.EXPIRED


def test_a_dead_link_carries_its_redirect_only_for_the_client_that_asked() -> None:
    link, verification = waiting()
    later = NOW + timedelta(minutes=11)
    mine = judge(link, verification, client="client_a", now=later)
    theirs = judge(link, verification, client="client_b", now=later)
    assert isinstance(mine.error, MagicLinkExpiredError)
    assert mine.error.redirect_url == "https://a.example/"
    assert isinstance(theirs.error, MagicLinkExpiredError) and theirs.error.redirect_url is None


def test_every_transition_says_why_it_happens() -> None:
    tables = (
        flows.VERIFICATION_TRANSITIONS,
        flows.SIGN_UP_TRANSITIONS,
        flows.SIGN_IN_TRANSITIONS,
        flows.SESSION_TRANSITIONS,
    )
    drawn = {(old, new) for table in tables for old, news in table.items() for new in news}
    assert drawn == set(flows.TRANSITION_CAUSES)
