"""Hypothesis drives the core through sign-ups, sign-ins, clicks from several clients (with and
without the confirmation code), expiry, abandonment, resends, a signed-in user adding and
verifying addresses (two users may claim one), and waits cancelled while they wait, in random
orders, on memory and on SQLite storage.

The machine keeps its own model of every record (``_machine_model.py``) and predicts from it what
each step must do: a click completes (with a session for the starting client, for which user),
is refused (with which error code, recording at most a counted wrong code, a mismatch or a
refused claim) or asks for the code. The service must do exactly that: after every step the
stored records equal the model's, and a refused step writes nothing beyond what it records.

Checked by hand that it fails when a fault is injected: a second sign-up of a taken address
always refused; one wrong confirmation code disabling the link; ``deny`` completing a click from
another client; a link that outlives its attempt's ``abandon_at`` still completing or renewing it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from magiclink_core import (
    AttemptKind,
    AuthError,
    Client,
    ConfirmationCodeError,
    CrossDevicePolicy,
    EmailAddress,
    ErrorCode,
    Link,
    LinkPreview,
    LinkResult,
    MagicLinkError,
    MagicLinks,
    Record,
    Session,
    Settings,
    SignIn,
    SignUp,
    Storage,
    User,
    VerificationStatus,
)
from magiclink_core.local_notifier import LocalNotifier
from magiclink_core.ports import Subscription
from magiclink_core.storage import MemoryStorage, SQLiteStorage
from tests.support import SECRET, TOKEN_RE, PassingNotifier

from ._machine_model import (
    STATUS_OF,
    MAttempt,
    MClient,
    MLink,
    Model,
    MSession,
    MVerification,
    Outcome,
    Prediction,
    Progress,
    Records,
)
from ._support import BASE_URL, PortalMachine

EMAILS = ["ann@example.org", "bob@example.org", "cy@example.org"]
LINK_TTL = timedelta(minutes=10)
ATTEMPT_TTL = LINK_TTL  # the least allowed: any link not sent at once outlives its attempt
Key = tuple[str, str]

# a passing run takes about half a minute; shrinking a failure on a busy machine takes minutes
pytestmark = pytest.mark.timeout(900)


class ParkingNotifier(PassingNotifier):
    """The in-process notifier, telling the test when a waiter has parked on a subscription
    (so a wait is cancelled while it waits, without sleeping) and how many are subscribed."""

    def __init__(self) -> None:
        super().__init__(LocalNotifier())
        self.parked: anyio.Event | None = None
        self.subscribed = 0

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        async with self.inner.subscribe(channel) as subscription:
            self.subscribed += 1
            try:
                yield _Parking(subscription, self)
            finally:
                self.subscribed -= 1


class _Parking:
    def __init__(self, inner: Subscription, notifier: ParkingNotifier) -> None:
        self._inner, self._notifier = inner, notifier

    async def wait(self) -> None:
        if self._notifier.parked is not None:
            self._notifier.parked.set()
        await self._inner.wait()


def view(record: Record) -> tuple[object, ...]:
    """The fields the model predicts, of a stored record (as :meth:`Model.expected` has them)."""

    def v(attempt: SignUp | SignIn | EmailAddress) -> tuple[object, ...] | None:
        x = attempt.verification
        if x is None:
            return None
        return (
            x.status,
            x.link_id,
            x.expire_at,
            x.confirmation_code,
            x.failed_code_attempts,
            x.verified_at_client,
            x.redirect_url,
        )

    if isinstance(record, Client):
        return (record.sign_up_id, record.sign_in_id)
    if isinstance(record, SignUp | SignIn):
        # who started it for which address, where it stands, what it made, when it is abandoned
        if isinstance(record, SignUp):
            started: tuple[object, ...] = (record.client_id, record.email_address)
            made: tuple[object, ...] = (record.created_user_id, record.created_session_id)
        else:
            started = (record.client_id, record.identifier, record.user_id, record.email_address_id)
            made = (record.created_session_id,)
        return (*started, record.status, v(record), *made, record.abandon_at)
    if isinstance(record, EmailAddress):
        return (record.user_id, record.email, record.claimed_email, v(record), record.client_id)
    if isinstance(record, Link):
        return (
            record.attempt_kind,
            record.attempt_id,
            record.client_id,
            record.expire_at,
            record.consumed_at is not None,
            record.consumed_by_client,
        )
    if isinstance(record, Session):
        return (record.user_id, record.client_id, record.token_digest is not None, record.status)
    if isinstance(record, User):
        return (record.primary_email_address_id,)
    raise TypeError(record)


class MagicLinkMachine(PortalMachine):
    clients = Bundle("clients")
    attempts = Bundle("attempts")
    links = Bundle("links")
    sessions = Bundle("sessions")
    addresses = Bundle("addresses")

    def __init__(self) -> None:
        super().__init__()
        self.notifier = ParkingNotifier()
        self.storage = self.make_storage()
        self._ml: MagicLinks | None = None
        self._model: Model | None = None
        self._redirects = 0
        self._seen: dict[Key, Record] | None = None

    def make_storage(self) -> Storage:
        raise NotImplementedError

    def teardown(self) -> None:
        try:
            if self._ml is not None:
                self.call(self._ml.aclose)
        finally:
            super().teardown()

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        self._seen = None  # whatever it does, the storage is read afresh after it
        return super().call(fn, *args, **kwargs)

    @property
    def ml(self) -> MagicLinks:
        assert self._ml is not None
        return self._ml

    @property
    def model(self) -> Model:
        assert self._model is not None
        return self._model

    @initialize(
        target=clients,
        policy=st.sampled_from([*CrossDevicePolicy, CrossDevicePolicy.CONFIRM]),
        max_codes=st.sampled_from([1, 2, 3]),
        protection=st.booleans(),
    )
    def setup(self, policy: CrossDevicePolicy, max_codes: int, protection: bool) -> Any:
        self._model = Model(policy, max_codes, protection)
        self._ml = MagicLinks(
            Settings(
                secret=SECRET,
                base_url=BASE_URL,
                cross_device=policy,
                links_per_address=0,
                max_confirmation_code_attempts=max_codes,
                enumeration_protection=protection,
                link_ttl=LINK_TTL,
                attempt_ttl=ATTEMPT_TTL,
                wait_poll_interval=timedelta(seconds=60),  # only a wake-up or a cancel ends a wait
                # the machine models clicks, not the recent sign-in account changes ask for
                # (tests/security/test_account_changes_from_a_stolen_session.py does)
                reverification_window=None,
                # nor the per-IP budgets (every step comes from one test process)
                attempts_per_ip=0,
                links_per_ip=0,
                confirmation_code_failures_per_ip=0,
            ),
            storage=self.storage,
            mailer=self.mailer,
            notifier=self.notifier,
            clock=self.clock,
        )
        return multiple(self.new_client(), self.new_client(), self.new_client())

    # -- clients and attempts ----------------------------------------------------------------

    def new_client(self) -> MClient:
        record, _token = self.call(self.ml.create_client)
        client = MClient(record)
        self.model.clients[client.id] = client
        return client

    @rule(target=attempts, client=clients, email=st.sampled_from(EMAILS))
    def start_sign_up(self, client: MClient, email: str) -> Any:
        owner = self.model.claims.get(email)
        taken = owner is not None and not self.model.enumeration_protection
        refusal = ErrorCode.IDENTIFIER_EXISTS if taken else None
        sign_up: SignUp | None = self.unless_refused(
            refusal, self.ml.create_sign_up, client.record, email
        )
        if sign_up is None:
            return multiple()
        abandon_at = self.clock.now() + ATTEMPT_TTL
        attempt = MAttempt(AttemptKind.SIGN_UP, sign_up.id, email, client.id, abandon_at=abandon_at)
        self._replace(client, "sign_up", attempt)
        return attempt

    @rule(target=attempts, client=clients, email=st.sampled_from(EMAILS))
    def start_sign_in(self, client: MClient, email: str) -> Any:
        owner = self.model.claims.get(email)
        unknown = owner is None and not self.model.enumeration_protection
        refusal = ErrorCode.IDENTIFIER_NOT_FOUND if unknown else None
        sign_in: SignIn | None = self.unless_refused(
            refusal, self.ml.create_sign_in, client.record, email
        )
        if sign_in is None:
            return multiple()
        # protected, a known address's factor id is the keyed one an unknown address gets
        keyed = self.ml.settings.keyring.pseudo_id(email)
        if owner is not None:
            expected = keyed if self.model.enumeration_protection else owner.id
            assert (sign_in.user_id, sign_in.email_address_id) == (owner.user_id, expected)
        else:  # the same kind of attempt, so nobody can tell the account is missing
            assert sign_in.user_id is None and sign_in.email_address_id == keyed
        attempt = MAttempt(
            AttemptKind.SIGN_IN,
            sign_in.id,
            email,
            client.id,
            user_id=owner.user_id if owner else None,
            abandon_at=self.clock.now() + ATTEMPT_TTL,
            email_address_id=sign_in.email_address_id,
        )
        self._replace(client, "sign_in", attempt)
        return attempt

    def _replace(self, client: MClient, kind: str, attempt: MAttempt) -> None:
        """A newer attempt of a kind abandons the client's previous one, if still in progress."""
        previous: MAttempt | None = getattr(client, kind)
        if previous is not None and previous.progress is Progress.OPEN:
            previous.progress = Progress.ABANDONED
            v = previous.verification
            if v is not None and v.status is VerificationStatus.UNVERIFIED:
                v.status = VerificationStatus.FAILED
        # and the client's attempt of the other kind, when in progress for the same address
        other: MAttempt | None = getattr(client, "sign_in" if kind == "sign_up" else "sign_up")
        if other is not None and other.progress is Progress.OPEN and other.email == attempt.email:
            other.progress = Progress.ABANDONED
            v = other.verification
            if v is not None and v.status is VerificationStatus.UNVERIFIED:
                v.status = VerificationStatus.FAILED
        setattr(client, kind, attempt)
        self.model.attempts.append(attempt)

    # -- issuing links -----------------------------------------------------------------------

    def _redirect(self) -> tuple[str, str]:
        self._redirects += 1
        path = f"/done?n={self._redirects}"
        return path, BASE_URL + path

    def _prepare(self, attempt: MAttempt, session: MSession | None = None) -> MLink | None:
        now = self.clock.now()
        path, absolute = self._redirect()
        sent = len(self.mailer.outbox)
        if attempt.kind is AttemptKind.EMAIL_ADDRESS:
            assert session is not None
            if attempt.removed or session.user_id != attempt.user_id:
                error: ErrorCode | None = ErrorCode.NOT_FOUND
            else:
                error = ErrorCode.INVALID_STATE if attempt.progress is Progress.COMPLETE else None
            prepare: Any = self.ml.prepare_email_verification
            args: tuple[Any, ...] = (session.record, attempt.id)
        else:
            error = None if attempt.open_at(now) else ErrorCode.INVALID_STATE
            starter = self.model.clients[attempt.client_id or ""].record
            prepare = (
                self.ml.prepare_sign_up_verification
                if attempt.kind is AttemptKind.SIGN_UP
                else self.ml.prepare_first_factor
            )
            args = (starter, attempt.id)
        if error is not None:
            self.expect_refusal(error, prepare, *args, redirect_url=path)
            assert len(self.mailer.outbox) == sent, "a refused prepare sent an email"
            return None
        prepared = self.call(prepare, *args, redirect_url=path)
        v = prepared.verification
        assert v.status is VerificationStatus.UNVERIFIED and v.expire_at == now + LINK_TTL
        assert v.redirect_url == absolute and v.failed_code_attempts == 0
        if session is not None:  # the asking client owns the link and the wait
            attempt.client_id = session.client_id
        attempt.verification = MVerification(v.link_id, v.expire_at, v.confirmation_code, absolute)
        return self._sent_link(attempt, sent)

    def _sent_link(self, attempt: MAttempt, sent: int) -> MLink | None:
        """The link in the one email just sent for ``attempt`` (None for a no-account notice)."""
        assert len(self.mailer.outbox) == sent + 1, "one email per link"
        message = self.mailer.outbox[-1]
        assert message.to == attempt.email
        match = TOKEN_RE.search(message.text)
        assert (match is not None) == attempt.carries_link
        if match is None:
            return None
        v = attempt.verification
        assert v is not None
        link = MLink(
            match.group(1), v.link_id, attempt, attempt.client_id or "", v.code, v.expire_at
        )
        self.model.links.append(link)
        return link

    @rule(target=links, attempt=attempts)
    def prepare(self, attempt: MAttempt) -> Any:
        link = self._prepare(attempt)
        return link if link is not None else multiple()

    @rule(target=links, link=links)
    def resend(self, link: MLink) -> Any:
        """The expired-link page's resend: a fresh link for the same attempt, same redirect."""
        attempt, now = link.attempt, self.clock.now()
        sent = len(self.mailer.outbox)
        current = attempt.verification
        status = None if current is None else current.status_at(now)
        if current is not None and current.link_id == link.link_id and now >= link.expire_at:
            status = VerificationStatus.EXPIRED
        refusal: ErrorCode | None = None
        if attempt.removed or link.consumed or not attempt.open_at(now) or current is None:
            refusal = ErrorCode.FAILED
        elif status is VerificationStatus.UNVERIFIED:  # a link in the inbox still works
            refusal = ErrorCode.INVALID_STATE
        elif status is not VerificationStatus.EXPIRED:  # failed by codes, or refused
            refusal = ErrorCode.FAILED
        if refusal is not None:
            self.expect_refusal(refusal, self.ml.resend_link, link.token)
            assert len(self.mailer.outbox) == sent
            return multiple()
        kind = self.call(self.ml.resend_link, link.token)
        assert kind is attempt.kind
        stored = self.read_one(attempt)
        old = attempt.verification
        v = stored.verification
        assert old is not None and v is not None
        assert v.redirect_url == old.redirect_url and v.expire_at == now + LINK_TTL
        attempt.verification = MVerification(
            v.link_id, v.expire_at, v.confirmation_code, old.redirect_url
        )
        new = self._sent_link(attempt, sent)
        assert new is not None
        return new

    @rule(link=consumes(links))
    def forget_link(self, link: MLink) -> None:
        """Links drop out of play, so the others get clicked more."""

    @rule(seconds=st.sampled_from([30, 60, 300, 599, 601, 3600]))
    def advance_time(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    # -- clicks ------------------------------------------------------------------------------

    def _click(
        self, link: MLink, clicker: MClient | None, code: str, *, opened: bool = False
    ) -> MSession | None:
        """Click ``link`` (``verify_link``; ``opened``: ``open_link``, where it completes)."""
        given = {"none": None, "right": link.code, "wrong": _wrong(link.code)}[code]
        clicker_id = clicker.id if clicker else None
        now = self.clock.now()
        expected = self.model.predict_click(link, clicker_id, given, now)
        what = "open" if opened else "click"
        event(f"{what}: {expected.outcome} {expected.error or ''} {expected.records}")
        before = self.observe()
        try:
            record = clicker.record if clicker else None
            if opened:
                result: LinkResult = self.call(self.ml.open_link, link.token, record)
                assert isinstance(result, LinkResult), f"{result!r}, but {expected} was due"
            else:
                result = self.call(self.ml.verify_link, link.token, record, confirmation_code=given)
        except AuthError as exc:
            assert expected.outcome is not Outcome.COMPLETE, f"refused ({exc!r}), not completed"
            assert expected.outcome is not Outcome.AGAIN, f"refused ({exc!r}), not repeated"
            self._check_refusal(expected, exc, link)
            self._record_refusal(expected, link, clicker_id)
            self.check_changed(before, self._refusal_writes(expected, link))
            return None
        if expected.outcome is Outcome.AGAIN:
            self._repeated(link, result, before)
            return None
        assert not result.repeated
        assert expected.outcome is Outcome.COMPLETE, f"completed, but {expected} was due"
        user_id = link.attempt.user_id
        had_primary = user_id is not None and self.model.users.get(user_id) is not None
        session = self._completed(expected, link, clicker_id, result)
        changed = {("links", link.link_id), self.key_of(link.attempt)}
        if session is not None:
            changed.add(("sessions", session.id))
            if expected.user_id is None:  # a new user, and its address
                primary = self.model.users[session.user_id] or ""
                changed |= {("users", session.user_id), ("email_addresses", primary)}
        elif user_id is not None and not had_primary:  # a first verified address is primary
            changed.add(("users", user_id))
        changed |= {("sessions", s.id) for s in self._ended}
        self.check_changed(before, changed)
        if result.session_token is not None:  # the clicking client is signed in at once
            live = self.call(self.ml.authenticate, result.session_token)
            assert live is not None and session is not None and live.id == session.id
        return session

    def _repeated(self, link: MLink, result: LinkResult, before: Any) -> None:
        """A used link clicked again by the client that used it (or that it was used for):
        the same result; the starter's live session gets a fresh token, nothing else."""
        assert result.repeated and result.attempt.id == link.attempt.id
        changed: set[Key] = set()
        if result.session is not None:
            assert result.session_token is not None
            assert result.session.id == link.attempt.created_session_id
            mine = next(s for s in self.model.sessions if s.id == result.session.id)
            mine.has_token = True
            changed.add(("sessions", mine.id))
            live = self.call(self.ml.authenticate, result.session_token)
            assert live is not None and live.id == mine.id
        else:
            assert result.session_token is None
        self.check_changed(before, changed)

    def _check_refusal(self, expected: Prediction, exc: AuthError, link: MLink) -> None:
        assert exc.code is expected.error, f"{exc!r}, but {expected} was due"
        if isinstance(exc, ConfirmationCodeError):
            assert exc.attempts_left == expected.attempts_left
        if isinstance(exc, MagicLinkError):  # only the client that asked is sent back to the app
            v = link.attempt.verification
            back = v.redirect_url if expected.redirect_back and v is not None else None
            assert exc.redirect_url == back
        if expected.records is Records.CLAIM_REFUSED:
            assert "another account" in exc.message

    def _record_refusal(self, expected: Prediction, link: MLink, clicker: str | None) -> None:
        v = link.attempt.verification
        if expected.records is Records.WRONG_CODE:
            assert v is not None
            v.failed_codes += 1
            if v.failed_codes >= self.model.max_codes:
                v.status = VerificationStatus.FAILED
        elif expected.records is Records.MISMATCH:
            assert v is not None
            v.status = VerificationStatus.CLIENT_MISMATCH
        elif expected.records is Records.CLAIM_REFUSED:
            assert v is not None
            v.status = VerificationStatus.FAILED
            link.consumed, link.consumed_by = True, clicker

    def _refusal_writes(self, expected: Prediction, link: MLink) -> set[Key]:
        if expected.records is Records.NOTHING:
            return set()
        if expected.records is Records.CLAIM_REFUSED:
            return {self.key_of(link.attempt), ("links", link.link_id)}
        return {self.key_of(link.attempt)}

    def _completed(
        self, expected: Prediction, link: MLink, clicker: str | None, result: LinkResult
    ) -> MSession | None:
        attempt, model = link.attempt, self.model
        self._ended: list[MSession] = []
        assert attempt.verification is not None
        assert result.kind is attempt.kind and result.attempt.id == attempt.id
        assert result.verified_from_the_same_client == expected.same_client
        assert result.redirect_url == attempt.verification.redirect_url
        link.consumed, link.consumed_by = True, clicker
        attempt.verification.status = VerificationStatus.VERIFIED
        attempt.verification.verified_at_client = clicker
        attempt.progress = Progress.COMPLETE
        if attempt.kind is AttemptKind.EMAIL_ADDRESS:
            assert result.session is None and result.session_token is None
            model.claims[attempt.email] = attempt
            assert attempt.user_id is not None
            if model.users[attempt.user_id] is None:
                model.users[attempt.user_id] = attempt.id
            return None
        session = result.session
        assert session is not None, "a completed sign-up or sign-in made no session"
        assert session.client_id == link.starter, "the session went to the clicker"
        assert (result.session_token is not None) == expected.same_client
        if expected.user_id is not None:
            assert session.user_id == expected.user_id, "signed in the wrong user"
        else:  # a new user, with the address verified and primary
            assert session.user_id not in model.users
            user = self.call(self.ml.get_user, session.user_id)
            address = MAttempt(
                AttemptKind.EMAIL_ADDRESS,
                user.primary_email_address_id,
                attempt.email,
                link.starter,
                user_id=session.user_id,
                progress=Progress.COMPLETE,
                verification=attempt.verification.copy(),
            )
            model.users[session.user_id] = address.id
            model.addresses[address.id] = address
            model.claims[attempt.email] = address
        attempt.created_session_id = session.id
        if attempt.kind is AttemptKind.SIGN_UP:
            attempt.created_user_id = session.user_id
            assert isinstance(result.attempt, SignUp)
            assert result.attempt.created_user_id == session.user_id
        # signing in again on a client ends what it was signed in with before
        self._ended = [
            s for s in model.sessions if s.client_id == link.starter and s.status == "active"
        ]
        for old in self._ended:
            old.status = "ended"
        mine = MSession(session, has_token=expected.same_client)
        model.sessions.append(mine)
        return mine

    @rule(
        target=sessions,
        link=links,
        by_starter=st.booleans(),
        other=st.none() | clients,
        code=st.sampled_from(["none", "right", "wrong"]),
        times=st.sampled_from([1, 1, 2, 3]),
    )
    def click(
        self, link: MLink, by_starter: bool, other: MClient | None, code: str, times: int
    ) -> Any:
        """Click a link, maybe again and again (a used link, wrong codes counting down)."""
        clicker = self._clicker(link, by_starter, other)
        sessions = [self._click(link, clicker, code) for _ in range(times)]
        return multiple(*(s for s in sessions if s is not None))

    def _clicker(self, link: MLink, by_starter: bool, other: MClient | None) -> MClient | None:
        return self.model.clients[link.starter] if by_starter else other

    @rule(
        target=links,
        client=clients,
        kind=st.sampled_from([AttemptKind.SIGN_UP, AttemptKind.SIGN_IN]),
        email=st.none() | st.sampled_from(EMAILS),
        by_starter=st.booleans(),
        other=st.none() | clients,
        codes=st.lists(
            st.sampled_from(["none", "right", "right", "wrong"]), min_size=1, max_size=3
        ),
        pause=st.sampled_from([0, 0, 30, 300]),
        delay=st.sampled_from([0, 0, 0, 599, 600, 3600]),
    )
    def prepare_and_click(
        self,
        client: MClient,
        kind: AttemptKind,
        email: str | None,
        by_starter: bool,
        other: MClient | None,
        codes: list[str],
        pause: int,
        delay: int,
    ) -> Any:
        """The common path, made likely: the client's current attempt (or, given ``email``, a
        new one) emails a link, maybe after a ``pause`` (so the link outlives the attempt),
        clicked at once or a while later, maybe more than once (a code typed wrong, then
        right), and kept to be clicked again."""
        if email is not None:
            start = self.start_sign_up if kind is AttemptKind.SIGN_UP else self.start_sign_in
            start(client, email)
        self.clock.advance(seconds=pause)
        attempt = client.sign_up if kind is AttemptKind.SIGN_UP else client.sign_in
        link = self._prepare(attempt) if attempt is not None else None
        if link is None:
            return multiple()
        self.clock.advance(seconds=delay)
        clicker = self._clicker(link, by_starter, other)
        for code in codes:
            self._click(link, clicker, code)
        return link

    @rule(target=sessions, client=clients, email=st.sampled_from(EMAILS))
    def sign_up_and_click(self, client: MClient, email: str) -> Any:
        """A sign-up clicked through on its own client, made likely: users to sign in and to
        add addresses to (a taken address signs its owner in)."""
        attempt = self.start_sign_up(client, email)
        if not isinstance(attempt, MAttempt):
            return multiple()
        link = self._prepare(attempt)
        assert link is not None
        session = self._click(link, client, "none")
        assert session is not None, "a sign-up clicked on its own client did not complete"
        return session

    @rule(link=links, by_starter=st.booleans(), other=st.none() | clients)
    def inspect(self, link: MLink, by_starter: bool, other: MClient | None) -> None:
        """What a click would do, read without changing anything (mail scanners do this)."""
        self._previewed(self.ml.inspect_link, link, self._clicker(link, by_starter, other))

    @rule(link=links, by_starter=st.booleans(), other=st.none() | clients)
    def open(self, link: MLink, by_starter: bool, other: MClient | None) -> None:
        """The link opened (the landing's GET): a click where no confirmation is due (the
        client that asked, or a repeat by the one that used it), else what inspecting says,
        changing nothing."""
        clicker = self._clicker(link, by_starter, other)
        expected = self.model.judge(
            link, clicker.id if clicker else None, None, self.clock.now(), confirmed=False
        )
        if expected.outcome in (Outcome.COMPLETE, Outcome.AGAIN):
            self._click(link, clicker, "none", opened=True)
        else:
            self._previewed(self.ml.open_link, link, clicker)

    def _previewed(
        self, fn: Callable[..., Awaitable[Any]], link: MLink, clicker: MClient | None
    ) -> None:
        """``fn`` (inspect_link, or open_link where it only looks) answers what a click would
        do, or refuses as the model does, and changes nothing."""
        expected = self.model.judge(
            link, clicker.id if clicker else None, None, self.clock.now(), confirmed=False
        )
        before = self.observe()
        if expected.outcome is Outcome.REFUSED:
            self.expect_refusal(expected.error, fn, link.token, clicker and clicker.record)
        else:
            preview = self.call(fn, link.token, clicker and clicker.record)
            assert isinstance(preview, LinkPreview)
            v = link.attempt.verification
            assert v is not None
            assert preview.kind is link.attempt.kind and preview.email_address == link.attempt.email
            assert preview.same_client == expected.same_client
            assert preview.needs_confirmation == (
                expected.outcome in (Outcome.NEEDS_CODE, Outcome.NEEDS_TAP)
            )
            assert preview.needs_code == (expected.outcome is Outcome.NEEDS_CODE)
            assert preview.already_complete == (expected.outcome is Outcome.AGAIN)
            assert (preview.redirect_url, preview.expire_at) == (v.redirect_url, v.expire_at)
        self.check_changed(before, set())

    # -- a signed-in user's addresses: two users may claim one -------------------------------

    @rule(target=addresses, session=sessions, email=st.sampled_from(EMAILS))
    def add_address(self, session: MSession, email: str) -> Any:
        mine = [
            a
            for a in self.model.addresses.values()
            if a.user_id == session.user_id and a.email == email and not a.removed
        ]
        refusal = ErrorCode.IDENTIFIER_EXISTS if mine else None
        added: EmailAddress | None = self.unless_refused(
            refusal, self.ml.add_email_address, session.record, email
        )
        if added is None:
            return multiple()
        address = MAttempt(
            AttemptKind.EMAIL_ADDRESS,
            added.id,
            email,
            session.client_id,
            user_id=session.user_id,
            added_by=session,
        )
        self.model.addresses[address.id] = address
        return address

    @rule(target=links, address=addresses, own=st.booleans(), session=sessions)
    def prepare_address(self, address: MAttempt, own: bool, session: MSession) -> Any:
        """Verify an address by link, mostly from the session that added it."""
        assert address.added_by is not None
        link = self._prepare(address, address.added_by if own else session)
        return link if link is not None else multiple()

    @rule(
        target=links,
        address=addresses,
        by_starter=st.booleans(),
        other=st.none() | clients,
        code=st.sampled_from(["none", "right", "right", "wrong"]),
    )
    def prepare_and_click_address(
        self, address: MAttempt, by_starter: bool, other: MClient | None, code: str
    ) -> Any:
        """Adding the same address for two users and verifying both, made likely."""
        assert address.added_by is not None
        link = self._prepare(address, address.added_by)
        if link is None:
            return multiple()
        self._click(link, self._clicker(link, by_starter, other), code)
        return link

    @rule(address=addresses, own=st.booleans(), session=sessions)
    def remove_address(self, address: MAttempt, own: bool, session: MSession) -> None:
        """Removing a verified address frees it for another user to claim."""
        assert address.added_by is not None
        by = address.added_by if own else session
        if address.removed or by.user_id != address.user_id:
            error: ErrorCode | None = ErrorCode.NOT_FOUND
        elif self.model.users[by.user_id] == address.id:
            error = ErrorCode.INVALID_STATE
        else:
            error = None
        if error is not None:
            self.expect_refusal(error, self.ml.remove_email_address, by.record, address.id)
            return
        self.call(self.ml.remove_email_address, by.record, address.id)
        address.removed = True
        # its pending link (that of its newest email, if unused) goes with it
        v = address.verification
        self.model.links = [
            link
            for link in self.model.links
            if not (v is not None and link.link_id == v.link_id and not link.consumed)
        ]
        if self.model.claims.get(address.email) is address:
            del self.model.claims[address.email]

    # -- waits cancelled while they wait -----------------------------------------------------

    def _cancelled_wait(
        self, attempt: MAttempt, wait: Callable[..., Awaitable[Any]], owner: Any, how: str
    ) -> None:
        """Start a wait, let it park, cancel it (by its ``cancelled`` event or by cancelling
        its task); it must end at once, leave no subscriber behind and change nothing."""
        now = self.clock.now()
        v = attempt.verification
        over = v is not None and v.status_at(now) is not VerificationStatus.UNVERIFIED
        ended: list[Any] = []

        async def run() -> bool:
            stop, settled = anyio.Event(), anyio.Event()
            self.notifier.parked = settled
            try:
                with anyio.fail_after(5):  # generous: a hang, not a speed check
                    async with anyio.create_task_group() as group:

                        async def waiter() -> None:
                            try:
                                ended.append(
                                    await wait(
                                        owner,
                                        attempt.id,
                                        timeout=timedelta(seconds=30),
                                        cancelled=stop,
                                    )
                                )
                            finally:
                                settled.set()

                        group.start_soon(waiter)
                        await settled.wait()  # parked on its subscription, or already answered
                        parked = not ended
                        if how == "event":
                            stop.set()
                        else:
                            group.cancel_scope.cancel()
            finally:
                self.notifier.parked = None
            return parked

        before = self.observe()
        self._seen = None
        parked = self.portal.call(run)
        assert parked != over, "a wait with nothing to wait for parked, or one returned early"
        event(f"wait: {'cancelled while parked' if parked else 'answered at once'} ({how})")
        assert self.notifier.subscribed == 0, "a cancelled wait left its subscription behind"
        assert len(ended) == (0 if parked and how == "task" else 1)
        for result in ended:  # the attempt as it is, as a reader sees it
            assert result.version == before[self.key_of(attempt)].version
            assert _status(result) == (v.status_at(now) if v else None)
            if attempt.kind is not AttemptKind.EMAIL_ADDRESS:
                assert result.status == STATUS_OF[attempt.kind][attempt.progress_at(now)]
        self.check_changed(before, set())

    @rule(attempt=attempts, how=st.sampled_from(["event", "task"]))
    def cancel_a_wait(self, attempt: MAttempt, how: str) -> None:
        starter = self.model.clients[attempt.client_id or ""].record
        wait = (
            self.ml.wait_for_sign_up
            if attempt.kind is AttemptKind.SIGN_UP
            else self.ml.wait_for_sign_in
        )
        self._cancelled_wait(attempt, wait, starter, how)

    @rule(address=addresses, how=st.sampled_from(["event", "task"]))
    def cancel_an_address_wait(self, address: MAttempt, how: str) -> None:
        assert address.added_by is not None
        if address.removed:
            self.expect_refusal(
                ErrorCode.NOT_FOUND,
                self.ml.wait_for_email_address,
                address.added_by.record,
                address.id,
            )
            return
        self._cancelled_wait(address, self.ml.wait_for_email_address, address.added_by.record, how)

    # -- reading the storage -----------------------------------------------------------------

    @staticmethod
    def key_of(attempt: MAttempt) -> Key:
        table = {
            AttemptKind.SIGN_UP: "sign_ups",
            AttemptKind.SIGN_IN: "sign_ins",
            AttemptKind.EMAIL_ADDRESS: "email_addresses",
        }
        return (table[attempt.kind], attempt.id)

    def read_one(self, attempt: MAttempt) -> Any:
        kind = {
            AttemptKind.SIGN_UP: SignUp,
            AttemptKind.SIGN_IN: SignIn,
            AttemptKind.EMAIL_ADDRESS: EmailAddress,
        }[attempt.kind]
        return self.call(self.storage.get, kind, attempt.id)

    def observe(self) -> dict[Key, Record]:
        """Every stored record the model knows of, and any other the lookups turn up (all
        addresses of the machine's emails, all sessions of its clients); read again only after
        a call into the service."""
        if self._seen is None:
            self._seen = self._read_all()
        return self._seen

    def _read_all(self) -> dict[Key, Record]:
        model, storage = self.model, self.storage

        async def read() -> dict[Key, Record]:
            found: dict[Key, Record] = {}

            def put(record: Record | None) -> None:
                if record is not None:
                    found[record.table, record.id] = record

            for client in model.clients.values():
                put(await storage.get(Client, client.id))
                for session in await storage.list(Session, "client_id", client.id):
                    put(session)
            for a in model.attempts:
                put(await storage.get(SignUp if a.kind is AttemptKind.SIGN_UP else SignIn, a.id))
            for link in model.links:
                put(await storage.get(Link, link.link_id))
            for email in EMAILS:
                for address in await storage.list(EmailAddress, "email", email):
                    put(address)
            user_ids = set(model.users) | {
                r.user_id for r in found.values() if isinstance(r, EmailAddress | Session)
            }
            for user_id in user_ids:
                put(await storage.get(User, user_id))
            return found

        return self.portal.call(read)

    def check_changed(self, before: dict[Key, Record], allowed: set[Key]) -> None:
        """Nothing but ``allowed`` was written (a write moves a record's version)."""
        after = self.observe()
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert changed <= allowed, f"also written: {sorted(changed - allowed)}"

    def expect_refusal(
        self, code: ErrorCode | None, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> None:
        before = self.observe()
        try:
            self.call(fn, *args, **kw)
        except AuthError as exc:
            assert exc.code is code, f"{exc!r}, but {code} was due"
        else:
            raise AssertionError(f"{fn.__name__} did not refuse with {code}")
        self.check_changed(before, set())

    def unless_refused(
        self, refusal: ErrorCode | None, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        """What ``fn(*args)`` returns; or, where ``refusal`` is due, None once ``fn`` refused
        with it and changed nothing."""
        if refusal is None:
            return self.call(fn, *args)
        self.expect_refusal(refusal, fn, *args)
        return None

    # -- the invariant: the storage holds what the model says --------------------------------

    @invariant()
    def storage_matches_the_model(self) -> None:
        """The stored records are the model's, no address is claimed twice, and reads show what
        time did (an expired link, an attempt abandoned by time) without a write."""
        if self._model is None:
            return
        self._check_reads()
        records = self.observe()
        stored = {key: view(record) for key, record in records.items()}
        expected = self.model.expected()
        wrong = {
            key: (stored.get(key), expected.get(key))
            for key in stored.keys() | expected.keys()
            if stored.get(key) != expected.get(key)
        }
        assert not wrong, "stored (left) differs from the model (right): " + "; ".join(
            f"{key}: {pair}" for key, pair in sorted(wrong.items())
        )
        claimed = [
            r.claimed_email
            for r in records.values()
            if isinstance(r, EmailAddress) and r.claimed_email
        ]
        assert len(claimed) == len(set(claimed)), "an address is claimed twice"

    def _check_reads(self) -> None:
        model, now = self.model, self.clock.now()

        async def read() -> dict[str, tuple[object, object]]:
            seen: dict[str, tuple[object, object]] = {}
            for a in model.attempts:
                client = model.clients[a.client_id or ""].record
                get = self.ml.get_sign_up if a.kind is AttemptKind.SIGN_UP else self.ml.get_sign_in
                record = await get(client, a.id)
                seen[a.id] = (record.status, _status(record))
            for user_id in model.users:
                for address in await self.ml.list_email_addresses(user_id):
                    seen[address.id] = (address.verified, _status(address))
            return seen

        expected: dict[str, tuple[object, object]] = {}
        for a in model.attempts:
            status = STATUS_OF[a.kind][a.progress_at(now)]
            expected[a.id] = (status, a.verification and a.verification.status_at(now))
        for a in model.addresses.values():
            if not a.removed:
                verified = a.progress is Progress.COMPLETE
                expected[a.id] = (verified, a.verification and a.verification.status_at(now))
        assert self.portal.call(read) == expected


def _wrong(code: str) -> str:
    """A code of the right length that is not the right one."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def _status(record: SignUp | SignIn | EmailAddress) -> VerificationStatus | None:
    return record.verification.status if record.verification else None


class MemoryMachine(MagicLinkMachine):
    def make_storage(self) -> Storage:
        return MemoryStorage()


class SQLiteMachine(MagicLinkMachine):
    """The same machine on a fresh SQLite file per example: real SQL, WAL, a writer and a reader
    connection. The file goes to a RAM disk where there is one: durability is not what this
    machine checks, and an fsync per commit would cost most of its time."""

    def make_storage(self) -> Storage:
        ram = "/dev/shm"
        self._dir = tempfile.mkdtemp(
            prefix="magiclink-machine-", dir=ram if os.path.isdir(ram) else None
        )
        return SQLiteStorage(os.path.join(self._dir, "machine.db"))

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


# sized so the file runs in about half a minute on two cores; shrinking a failure takes longer
_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "report_multiple_bugs": False,  # one failure, shrunk quickly, is the clearer report
}
MemoryMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, **_COMMON)
SQLiteMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=40, **_COMMON)
TestOnMemory = MemoryMachine.TestCase
TestOnSQLite = SQLiteMachine.TestCase
