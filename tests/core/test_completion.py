"""Completing an attempt is pure data: the batch to write and the events to publish."""

from datetime import timedelta

import pytest

from magiclink_core import (
    Event,
    MagicLinkFailedError,
    RequestInfo,
    SignInStatus,
    SignUpStatus,
)
from magiclink_core.domain import flows, session_rules
from magiclink_core.domain.completion import Completion, complete
from magiclink_core.domain.models import Attempt, EmailAddress, Session, SignIn, SignUp, User
from magiclink_core.ports import Insert, Update
from magiclink_core.testing import make_record

from ._support import NOW, click, waiting

TERMS = session_rules.SessionTerms(
    lifetime=timedelta(days=30),
    idle_timeout=timedelta(days=7),
    touch_interval=timedelta(minutes=1),
    purge_grace=timedelta(days=1),
    token_grace=timedelta(minutes=1),
)


def clicked(kind: type[Attempt], **fields: object) -> tuple[Attempt, flows.ClickDecision]:
    """An attempt of ``kind`` waiting on client_a's link, and the judging of client_a's click."""
    link, verification = waiting(requested_by=RequestInfo(device="Firefox on Linux"))
    attempt = make_record(kind, client_id="client_a", verification=verification, **fields)
    return attempt, click(link, attempt)


def completed(
    attempt: Attempt,
    decision: flows.ClickDecision,
    *,
    account: EmailAddress | None = None,
    user: User | None = None,
    session_token_digest: str | None = None,
    device: RequestInfo | None = None,
    client_sessions: list[Session] | None = None,
    announce: bool = True,
) -> Completion:
    """``complete`` at NOW under TERMS."""
    return complete(
        attempt,
        decision,
        now=NOW,
        account=account,
        user=user,
        session_token_digest=session_token_digest,
        device=device,
        terms=TERMS,
        client_sessions=client_sessions or [],
        announce=announce,
    )


def test_a_sign_up_of_a_new_address_creates_user_address_and_session_in_one_batch() -> None:
    sign_up, decision = clicked(SignUp, email_address="ann@example.org")
    done = completed(sign_up, decision, session_token_digest="s" * 64, device=RequestInfo())
    inserted = [c.record for c in done.changes if isinstance(c, Insert)]
    kinds = sorted(type(r).__name__ for r in inserted)
    assert kinds == ["EmailAddress", "Session", "User"]
    user = next(r for r in inserted if isinstance(r, User))
    address = next(r for r in inserted if isinstance(r, EmailAddress))
    assert (
        user.primary_email_address_id == address.id and address.claimed_email == "ann@example.org"
    )
    assert isinstance(done.attempt, SignUp) and done.attempt.status is SignUpStatus.COMPLETE
    assert done.attempt.created_user_id == user.id
    assert done.session is not None and done.session.token_digest == "s" * 64
    assert [e.event for e in done.events] == [
        Event.USER_CREATED,
        Event.SIGN_UP_COMPLETED,
        Event.SESSION_CREATED,
    ]
    updated = {type(c.record).__name__ for c in done.changes if isinstance(c, Update)}
    assert updated == {"Link", "SignUp"}  # the link consumed, the attempt completed


def test_sign_up_and_sign_in_of_an_existing_account_end_alike() -> None:
    account = make_record(EmailAddress, user_id="user_ann", claimed_email="ann@example.org")
    outcomes = []
    for kind, fields in (
        (SignUp, {"email_address": "ann@example.org"}),
        (SignIn, {"identifier": "ann@example.org"}),
    ):
        attempt, decision = clicked(kind, **fields)
        done = completed(attempt, decision, account=account)
        assert not any(isinstance(c, Insert) and isinstance(c.record, User) for c in done.changes)
        assert done.session is not None and done.session.user_id == "user_ann"
        assert done.session.token_digest is None  # collected later by the starting client
        outcomes.append(done.attempt.status)
    assert outcomes == [SignUpStatus.COMPLETE, SignInStatus.COMPLETE]


def test_a_sign_in_whose_account_is_gone_fails() -> None:
    sign_in, decision = clicked(SignIn, identifier="gone@example.org", user_id="user_gone")
    with pytest.raises(MagicLinkFailedError):
        completed(sign_in, decision)


def test_verifying_an_address_claims_it_and_makes_it_primary_only_when_none_is() -> None:
    address, decision = clicked(EmailAddress, user_id="user_ann", email="work@example.org")
    for primary, expect_user_update in ((None, True), ("idn_home", False)):
        user = make_record(User, id="user_ann", primary_email_address_id=primary)
        done = completed(address, decision, user=user)
        assert (
            isinstance(done.attempt, EmailAddress)
            and done.attempt.claimed_email == "work@example.org"
        )
        updated_users = [c.record for c in done.changes if isinstance(c.record, User)]
        assert bool(updated_users) is expect_user_update
        assert done.session is None
        assert not any(
            isinstance(c, Insert) and isinstance(c.record, Session) for c in done.changes
        )


def test_only_a_complete_decision_completes() -> None:
    sign_up, _ = clicked(SignUp)
    refused = flows.ClickDecision(flows.ClickOutcome.REJECTED, same_client=True)
    with pytest.raises(ValueError):
        completed(sign_up, refused)


def test_a_sign_in_ends_the_clients_other_live_sessions_in_the_same_batch() -> None:
    sign_in, decision = clicked(SignIn, identifier="ann@example.org", user_id="user_a")
    account = make_record(
        EmailAddress, user_id="user_a", email="ann@example.org", claimed_email="ann@example.org"
    )

    def session(**fields: object) -> Session:
        defaults: dict[str, object] = {
            "user_id": "user_a",
            "client_id": "client_a",
            "last_active_at": NOW,
            "expire_at": NOW + timedelta(days=1),
        }
        return make_record(Session, **{**defaults, **fields})

    live, idle = session(), session(last_active_at=NOW - timedelta(days=8))
    elsewhere = session(client_id="client_b")
    done = completed(
        sign_in,
        decision,
        account=account,
        session_token_digest="s" * 64,
        device=RequestInfo(),
        client_sessions=[live, idle, elsewhere],
    )
    ended = [
        c.record for c in done.changes if isinstance(c, Update) and isinstance(c.record, Session)
    ]
    assert [s.id for s in ended] == [live.id]  # not the idle one (over already), not client_b's
    assert done.ended == (live.id,)  # named for the caches that must drop it
    assert ended[0].status.value == "ended" and ended[0].version == live.version + 1
    assert Event.SESSION_ENDED in [e.event for e in done.events]
    assert done.session is not None and done.session.id not in {s.id for s in ended}


def test_unannounced_the_batch_is_the_same_and_no_event_is_made() -> None:
    # with no hook registered the service completes unannounced: what is written must not change
    sign_in, decision = clicked(SignIn, identifier="ann@example.org", user_id="user_a")
    account = make_record(
        EmailAddress, user_id="user_a", email="ann@example.org", claimed_email="ann@example.org"
    )
    live = make_record(
        Session,
        user_id="user_a",
        client_id="client_a",
        last_active_at=NOW,
        expire_at=NOW + timedelta(days=1),
    )

    def completing(announce: bool) -> Completion:
        return completed(
            sign_in,
            decision,
            account=account,
            session_token_digest="s" * 64,
            device=RequestInfo(),
            client_sessions=[live],
            announce=announce,
        )

    def shape(done: Completion) -> list[tuple[str, str, object]]:
        return [
            (type(c).__name__, type(c.record).__name__, getattr(c.record, "status", None))
            for c in done.changes
            if isinstance(c, Insert | Update)
        ]

    loud, quiet = completing(True), completing(False)
    assert [e.event for e in loud.events] == [
        Event.SESSION_ENDED,
        Event.SIGN_IN_COMPLETED,
        Event.SESSION_CREATED,
    ]
    assert quiet.events == () and shape(quiet) == shape(loud) and len(quiet.changes) == 4
    assert quiet.attempt.status is SignInStatus.COMPLETE and quiet.session is not None

    address, verified = clicked(EmailAddress, user_id="user_ann", email="work@example.org")
    user = make_record(User, id="user_ann")
    quietly = completed(address, verified, user=user, announce=False)
    assert quietly.events == () and len(quietly.changes) == len(
        completed(address, verified, user=user).changes
    )
