"""Hypothesis drives sign-ups, sign-ins, clicks from several clients, expiry and cancellation in
random orders, and checks the invariants after every step:

- no session exists without a completed attempt whose link was consumed;
- no link works twice;
- nothing verifies after its link expired;
- under ``deny`` no click from another client completes anything; under ``confirm`` only with the
  right code;
- an email address is claimed by at most one user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from magiclink_core import (
    AuthError,
    Client,
    CrossDevicePolicy,
    EmailAddress,
    Link,
    MagicLinks,
    Session,
    SignIn,
    SignInStatus,
    SignUp,
    SignUpStatus,
)
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET

EMAILS = ["ann@example.org", "bob@example.org", "cy@example.org"]
_TOKEN_RE = re.compile(r"token=(mll1_[A-Za-z0-9_-]{43})")


@dataclass
class SentLink:
    token: str
    kind: str
    attempt_id: str
    starter: Client
    expire_at: datetime
    code: str
    used: list[str] = field(default_factory=list)


class MagicLinkMachine(RuleBasedStateMachine):
    clients = Bundle("clients")
    attempts = Bundle("attempts")
    links = Bundle("links")

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = start_blocking_portal()
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self.clock = FakeClock()
        self.storage = MemoryStorage()
        self.mailer = MemoryMailer()
        self.policy = CrossDevicePolicy.CONFIRM
        self.ml: MagicLinks | None = None

    def teardown(self) -> None:
        self._portal_cm.__exit__(None, None, None)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return await fn(*args, **kwargs)

        return self.portal.call(run)

    @property
    def magiclinks(self) -> MagicLinks:
        assert self.ml is not None
        return self.ml

    @initialize(target=clients, policy=st.sampled_from(list(CrossDevicePolicy)))
    def setup(self, policy: CrossDevicePolicy) -> Any:
        from magiclink_core import Settings

        self.policy = policy
        self.ml = MagicLinks(
            Settings(
                secret=SECRET,
                base_url="https://app.example.com",
                cross_device=policy,
                links_per_address=0,
                max_confirmation_code_attempts=2,
            ),
            storage=self.storage,
            mailer=self.mailer,
            clock=self.clock,
        )
        first, _ = self.call(self.magiclinks.create_client)
        second, _ = self.call(self.magiclinks.create_client)
        return multiple(first, second)

    @rule(target=clients)
    def new_client(self) -> Client:
        client, _ = self.call(self.magiclinks.create_client)
        return client

    @rule(target=attempts, client=clients, email=st.sampled_from(EMAILS))
    def start_sign_up(self, client: Client, email: str) -> tuple[str, str, Client]:
        sign_up = self.call(self.magiclinks.create_sign_up, client, email)
        return ("sign_up", sign_up.id, client)

    @rule(target=attempts, client=clients, email=st.sampled_from(EMAILS))
    def start_sign_in(self, client: Client, email: str) -> tuple[str, str, Client]:
        sign_in = self.call(self.magiclinks.create_sign_in, client, email)
        return ("sign_in", sign_in.id, client)

    @rule(target=links, attempt=attempts)
    def prepare(self, attempt: tuple[str, str, Client]) -> Any:
        kind, attempt_id, client = attempt
        before = len(self.mailer.outbox)
        try:
            if kind == "sign_up":
                prepared: Any = self.call(
                    self.magiclinks.prepare_sign_up_verification,
                    client,
                    attempt_id,
                    redirect_url="/",
                )
            else:
                prepared = self.call(
                    self.magiclinks.prepare_first_factor, client, attempt_id, redirect_url="/"
                )
        except AuthError as exc:
            assert exc.code == "invalid_state"  # already complete
            return multiple()
        assert len(self.mailer.outbox) == before + 1  # exactly one email per prepare
        match = _TOKEN_RE.search(self.mailer.outbox[-1].text)
        if match is None:  # the no-account notice carries no link
            assert kind == "sign_in" and prepared.user_id is None
            return multiple()
        return SentLink(
            match.group(1),
            kind,
            attempt_id,
            client,
            prepared.verification.expire_at,
            prepared.verification.confirmation_code,
        )

    @rule(link=links, clicker=clients, code=st.sampled_from(["none", "right", "wrong"]))
    def click(self, link: SentLink, clicker: Client, code: str) -> None:
        given = {"none": None, "right": link.code, "wrong": "x"}[code]
        now = self.clock.now()
        try:
            result = self.call(
                self.magiclinks.verify_link, link.token, clicker, confirmation_code=given
            )
        except AuthError as exc:
            event(f"click refused: {exc.code}")
            return
        same = clicker.id == link.starter.id
        event(f"click completed ({'same' if same else 'other'} client, {self.policy.value})")
        assert not link.used, "a link worked twice"
        assert now < link.expire_at, "a link worked after it expired"
        if not same:
            assert self.policy is not CrossDevicePolicy.DENY, "deny completed from another client"
            if self.policy is CrossDevicePolicy.CONFIRM:
                assert given == link.code, "confirm completed without the right code"
        assert result.verified_from_the_same_client == same
        if result.session is not None:
            assert result.session.client_id == link.starter.id, "the session went to the clicker"
            assert (result.session_token is not None) == same
        link.used.append(clicker.id)

    @rule(
        attempt=attempts,
        clicker=clients,
        code=st.sampled_from(["none", "right", "wrong"]),
        delay=st.sampled_from([0, 0, 599, 600, 3000]),
    )
    def prepare_and_click(
        self, attempt: tuple[str, str, Client], clicker: Client, code: str, delay: int
    ) -> None:
        """The common path, made likely: a fresh link clicked at once or a while later."""
        sent = self.prepare(attempt)
        if isinstance(sent, SentLink):
            self.clock.advance(seconds=delay)
            self.click(sent, clicker, code)

    @rule(link=consumes(links))
    def forget_link(self, link: SentLink) -> None:
        """Links drop out of play, so others get clicked more."""

    @rule(seconds=st.sampled_from([30, 300, 599, 601, 3600]))
    def advance_time(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule(attempt=attempts)
    def cancelled_wait(self, attempt: tuple[str, str, Client]) -> None:
        kind, attempt_id, client = attempt
        wait = (
            self.magiclinks.wait_for_sign_up
            if kind == "sign_up"
            else self.magiclinks.wait_for_sign_in
        )

        async def run() -> Any:
            stop = anyio.Event()
            stop.set()
            with anyio.fail_after(5):
                return await wait(client, attempt_id, timeout=timedelta(seconds=30), cancelled=stop)

        before = self.portal.call(
            (self.magiclinks.get_sign_up if kind == "sign_up" else self.magiclinks.get_sign_in),
            client,
            attempt_id,
        )
        after = self.portal.call(run)
        assert after.version == before.version  # a cancelled wait changes nothing

    # -- invariants --------------------------------------------------------------------------

    def _all(self, kind: type[Any]) -> list[Any]:
        return list(self.storage._records[kind].values())

    @invariant()
    def every_session_comes_from_a_consumed_link(self) -> None:
        if self.ml is None:
            return
        completed = {
            a.created_session_id: a
            for a in self._all(SignUp) + self._all(SignIn)
            if a.status in (SignUpStatus.COMPLETE, SignInStatus.COMPLETE)
        }
        for session in self._all(Session):
            attempt = completed.get(session.id)
            assert attempt is not None, "a session without a completed attempt"
            link = self.storage._records[Link].get(attempt.verification.link_id)
            assert link is not None and link.consumed_at is not None

    @invariant()
    def an_address_is_claimed_once(self) -> None:
        claimed = [a.claimed_email for a in self._all(EmailAddress) if a.claimed_email]
        assert len(claimed) == len(set(claimed))


MagicLinkMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMagicLinkMachine = MagicLinkMachine.TestCase
