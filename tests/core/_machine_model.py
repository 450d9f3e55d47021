"""The state machine's own model of the core: plain records of what should be stored, and the
prediction of what a click must do, written from the rules as the docs state them (not from the
code). ``test_state_machine.py`` drives the service and holds it to this model.

A click is predicted in the order the rules are written in ``docs/state-machines.md`` and the
guide: a used or superseded link fails; an expired one expires; a recorded mismatch stays a
mismatch; an attempt no longer in progress (complete, abandoned by a newer attempt or by time)
fails; the starting client completes; another client completes under ``allow``, is refused
under ``deny`` (recorded) and under ``confirm`` needs the code (a wrong one counted, the last
one disabling the link). A completion signs in the address's owner (a sign-up of a taken
address signs its owner in), makes a user for a new address, and refuses an added address
another user claimed first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from magiclink_core import (
    AttemptKind,
    Client,
    CrossDevicePolicy,
    ErrorCode,
    Session,
    SignInStatus,
    SignUpStatus,
    VerificationStatus,
)


class Progress(StrEnum):
    """Where an attempt stands (an added address is COMPLETE once it is claimed)."""

    OPEN = "open"
    COMPLETE = "complete"
    ABANDONED = "abandoned"


STATUS_OF: dict[AttemptKind, dict[Progress, str]] = {
    AttemptKind.SIGN_UP: {
        Progress.OPEN: SignUpStatus.MISSING_REQUIREMENTS,
        Progress.COMPLETE: SignUpStatus.COMPLETE,
        Progress.ABANDONED: SignUpStatus.ABANDONED,
    },
    AttemptKind.SIGN_IN: {
        Progress.OPEN: SignInStatus.NEEDS_FIRST_FACTOR,
        Progress.COMPLETE: SignInStatus.COMPLETE,
        Progress.ABANDONED: SignInStatus.ABANDONED,
    },
}


@dataclass(eq=False)
class MVerification:
    link_id: str
    expire_at: datetime
    code: str
    redirect_url: str
    status: VerificationStatus = VerificationStatus.UNVERIFIED
    failed_codes: int = 0
    verified_at_client: str | None = None

    def status_at(self, now: datetime) -> VerificationStatus:
        if self.status is VerificationStatus.UNVERIFIED and now >= self.expire_at:
            return VerificationStatus.EXPIRED
        return self.status

    def view(self) -> tuple[object, ...]:
        return (
            self.status,
            self.link_id,
            self.expire_at,
            self.code,
            self.failed_codes,
            self.verified_at_client,
            self.redirect_url,
        )

    def copy(self) -> MVerification:
        return replace(self)


@dataclass(eq=False)
class MSession:
    record: Session
    has_token: bool
    status: str = "active"  # ended when its client signs in again

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def user_id(self) -> str:
        return self.record.user_id

    @property
    def client_id(self) -> str:
        return self.record.client_id


@dataclass(eq=False)
class MAttempt:
    """A sign-up, a sign-in, or an address of a user (added, or made by a sign-up)."""

    kind: AttemptKind
    id: str
    email: str
    client_id: str | None  # the client its link is for
    user_id: str | None = None  # a sign-in's account when it started; an address's user
    abandon_at: datetime | None = None
    progress: Progress = Progress.OPEN
    verification: MVerification | None = None
    created_user_id: str | None = None
    created_session_id: str | None = None
    email_address_id: str | None = None  # a sign-in's factor
    added_by: MSession | None = None  # an added address: the session that added it
    removed: bool = False

    def open_at(self, now: datetime) -> bool:
        """Still in progress as a reader sees it (past ``abandon_at`` it reads abandoned)."""
        if self.progress is not Progress.OPEN:
            return False
        return self.abandon_at is None or now < self.abandon_at

    def progress_at(self, now: datetime) -> Progress:
        if self.progress is Progress.OPEN and not self.open_at(now):
            return Progress.ABANDONED
        return self.progress

    @property
    def carries_link(self) -> bool:
        return not (self.kind is AttemptKind.SIGN_IN and self.user_id is None)


@dataclass(eq=False)
class MLink:
    token: str
    link_id: str
    attempt: MAttempt
    starter: str  # the client that asked for it
    code: str
    expire_at: datetime
    consumed: bool = False
    consumed_by: str | None = None


@dataclass(eq=False)
class MClient:
    record: Client
    sign_up: MAttempt | None = None
    sign_in: MAttempt | None = None

    @property
    def id(self) -> str:
        return self.record.id


class Records(StrEnum):
    """What a refused click writes: nothing, or one of these."""

    NOTHING = "nothing"
    WRONG_CODE = "wrong_code"  # the attempt's tries counted (the last one fails the link)
    MISMATCH = "mismatch"  # policy deny: the attempt's verification marked client_mismatch
    CLAIM_REFUSED = "claim_refused"  # the link used up, the address's verification failed


class Outcome(StrEnum):
    COMPLETE = "complete"
    REFUSED = "refused"
    NEEDS_CODE = "needs_code"
    NEEDS_TAP = "needs_tap"  # policy allow, another client that has not confirmed (a GET)
    AGAIN = "again"  # a used link clicked again by the client that used it or it was used for


@dataclass(frozen=True)
class Prediction:
    outcome: Outcome
    error: ErrorCode | None = None
    records: Records = Records.NOTHING
    same_client: bool = False
    user_id: str | None = None  # a completion: whose session (None: a new user's)
    attempts_left: int | None = None
    # a link refused by the rules of a click sends the client that asked for it back to the app
    redirect_back: bool = False


@dataclass
class Model:
    policy: CrossDevicePolicy
    max_codes: int
    enumeration_protection: bool
    clients: dict[str, MClient] = field(default_factory=dict)
    attempts: list[MAttempt] = field(default_factory=list)  # sign-ups and sign-ins
    addresses: dict[str, MAttempt] = field(default_factory=dict)  # every address, by id
    links: list[MLink] = field(default_factory=list)
    sessions: list[MSession] = field(default_factory=list)
    users: dict[str, str | None] = field(default_factory=dict)  # user id -> primary address id
    claims: dict[str, MAttempt] = field(default_factory=dict)  # email -> the address claiming it

    def judge(
        self,
        link: MLink,
        clicker: str | None,
        code: str | None,
        now: datetime,
        *,
        confirmed: bool = True,
    ) -> Prediction:
        """What a click must do, before completion reads the accounts (``confirmed``: a
        click, not a look)."""
        attempt = link.attempt
        same = clicker is not None and clicker == link.starter
        if attempt.removed:  # an added address removed since: its link leads nowhere
            return Prediction(Outcome.REFUSED, ErrorCode.FAILED, same_client=same)
        verification = attempt.verification
        back = same and verification is not None

        def refused(error: ErrorCode, records: Records = Records.NOTHING) -> Prediction:
            return Prediction(Outcome.REFUSED, error, records, same, redirect_back=back)

        if link.consumed:
            done_by_it = (
                attempt.progress is Progress.COMPLETE
                and verification is not None
                and verification.link_id == link.link_id
                and verification.status is VerificationStatus.VERIFIED
            )
            if clicker is not None and done_by_it and (same or clicker == link.consumed_by):
                return Prediction(Outcome.AGAIN, same_client=same)
            return refused(ErrorCode.FAILED)
        if verification is None or verification.link_id != link.link_id:
            return refused(ErrorCode.FAILED)  # superseded by a newer link
        if now >= link.expire_at:
            return refused(ErrorCode.EXPIRED)
        if verification.status is VerificationStatus.CLIENT_MISMATCH:
            return refused(ErrorCode.CLIENT_MISMATCH)
        if not attempt.open_at(now) or verification.status is not VerificationStatus.UNVERIFIED:
            return refused(ErrorCode.FAILED)
        if same:
            return Prediction(Outcome.COMPLETE, same_client=same)
        if self.policy is CrossDevicePolicy.DENY:
            return Prediction(
                Outcome.REFUSED, ErrorCode.CLIENT_MISMATCH, Records.MISMATCH, same_client=False
            )
        if self.policy is CrossDevicePolicy.ALLOW:
            return Prediction(Outcome.COMPLETE if confirmed else Outcome.NEEDS_TAP)
        if code is None:
            return Prediction(Outcome.NEEDS_CODE, ErrorCode.INVALID_STATE)
        if code == verification.code:
            return Prediction(Outcome.COMPLETE, same_client=False)
        tries = verification.failed_codes + 1
        if tries >= self.max_codes:
            return Prediction(Outcome.REFUSED, ErrorCode.FAILED, Records.WRONG_CODE)
        return Prediction(
            Outcome.REFUSED,
            ErrorCode.CONFIRMATION_CODE_INCORRECT,
            Records.WRONG_CODE,
            attempts_left=self.max_codes - tries,
        )

    def predict_click(
        self, link: MLink, clicker: str | None, code: str | None, now: datetime
    ) -> Prediction:
        """What a click must do, completion included."""
        judged = self.judge(link, clicker, code, now)
        if judged.outcome is Outcome.AGAIN and judged.same_client:
            # the starter gets its session again, while it lives; else the link is used up
            mine = [s for s in self.sessions if s.id == link.attempt.created_session_id]
            if link.attempt.kind is not AttemptKind.EMAIL_ADDRESS and not (
                mine and mine[0].status == "active"
            ):
                return Prediction(
                    Outcome.REFUSED, ErrorCode.FAILED, same_client=True, redirect_back=True
                )
        if judged.outcome is not Outcome.COMPLETE:
            return judged
        attempt, same = link.attempt, judged.same_client
        owner = self.claims.get(attempt.email)
        if attempt.kind is AttemptKind.EMAIL_ADDRESS:
            if owner is not None:  # another user claimed it first: this one loses
                return Prediction(
                    Outcome.REFUSED, ErrorCode.FAILED, Records.CLAIM_REFUSED, same_client=same
                )
            return Prediction(Outcome.COMPLETE, same_client=same, user_id=attempt.user_id)
        if owner is not None:  # a sign-in, or a sign-up of a taken address: its owner signs in
            return Prediction(Outcome.COMPLETE, same_client=same, user_id=owner.user_id)
        if attempt.kind is AttemptKind.SIGN_IN:  # the account's address went away
            return Prediction(Outcome.REFUSED, ErrorCode.FAILED, same_client=same)
        return Prediction(Outcome.COMPLETE, same_client=same, user_id=None)

    # -- the stored records, as the model has them ---------------------------------------------

    def expected(self) -> dict[tuple[str, str], tuple[object, ...]]:
        """Every record the storage must hold, by (table, id), as :func:`view` shows it."""
        out: dict[tuple[str, str], tuple[object, ...]] = {}
        for client in self.clients.values():
            out["clients", client.id] = (
                client.sign_up.id if client.sign_up else None,
                client.sign_in.id if client.sign_in else None,
            )
        for a in self.attempts:
            v = a.verification.view() if a.verification else None
            status = STATUS_OF[a.kind][a.progress]
            if a.kind is AttemptKind.SIGN_UP:
                out["sign_ups", a.id] = (
                    a.client_id,
                    a.email,
                    status,
                    v,
                    a.created_user_id,
                    a.created_session_id,
                    a.abandon_at,
                )
            else:
                out["sign_ins", a.id] = (
                    a.client_id,
                    a.email,
                    a.user_id,
                    a.email_address_id,
                    status,
                    v,
                    a.created_session_id,
                    a.abandon_at,
                )
        for a in self.addresses.values():
            if not a.removed:
                out["email_addresses", a.id] = (
                    a.user_id,
                    a.email,
                    a.email if a.progress is Progress.COMPLETE else None,
                    a.verification.view() if a.verification else None,
                    a.client_id,
                )
        for link in self.links:
            out["links", link.link_id] = (
                link.attempt.kind,
                link.attempt.id,
                link.starter,
                link.expire_at,
                link.consumed,
                link.consumed_by,
            )
        for s in self.sessions:
            out["sessions", s.id] = (s.user_id, s.client_id, s.has_token, s.status)
        for user_id, primary in self.users.items():
            out["users", user_id] = (primary,)
        return out
