"""Hypothesis drives email codes and link clicks together, in any order, on one sign-in: new
emails, right and wrong codes, clicks from the starting client and from another, time passing.
Whatever the order, the model's promises hold after every step:

- the sign-in completes at most once (one session, one consumed link);
- it never completes after its verification failed (the wrong-code budget spent), nor by a
  code or link of an email replaced by a newer one, nor after expiry;
- once the address's hourly budget of wrong codes is spent, no code is compared (429), until
  the window passes;
- a refused step changes nothing but the count of wrong codes.

Checked by hand that it fails when the last allowed wrong code does not fail the verification,
and when the address's budget is not checked before a code is compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from magiclink_core import (
    AuthError,
    Client,
    EmailCodeError,
    MagicLinkError,
    MagicLinks,
    RateLimitedError,
    Settings,
    SignInStatus,
    VerificationStatus,
)
from magiclink_core.storage import MemoryStorage
from tests.support import SECRET, token_in

from ._support import PortalMachine

EMAIL = "ann@example.org"
MAX_WRONG = 3
ADDRESS_BUDGET = 4  # just above one email's MAX_WRONG: a second email soon spends it


@dataclass
class Sent:
    """One email of the sign-in: its link and code, and whether it is the newest."""

    token: str
    code: str


class EmailCodeMachine(PortalMachine):
    def __init__(self) -> None:
        super().__init__()
        self.links = MagicLinks(
            Settings(
                secret=SECRET,
                base_url="https://app.example.com",
                cross_device="allow",
                links_per_address=0,
                attempt_ttl=timedelta(days=7),
                max_email_code_attempts=MAX_WRONG,
                email_code_failures_per_address=ADDRESS_BUDGET,
                email_code_window=timedelta(hours=1),
            ),
            storage=MemoryStorage(),
            mailer=self.mailer,
            clock=self.clock,
        )
        # the model
        self.emails: list[Sent] = []
        self.completions = 0
        self.done_by: Client | None = None  # the client whose link or code completed it
        self.wrong_in_verification = 0
        self.failed = False
        self.wrong_this_window: list[Any] = []  # times of wrong codes counted for the address

    @initialize()
    def start(self) -> None:
        owner, _ = self.call(self.links.create_client)
        sign_up = self.call(self.links.create_sign_up, owner, EMAIL)
        self.call(self.links.prepare_sign_up_verification, owner, sign_up.id, redirect_url="/")
        self.call(self.links.verify_link, token_in(self.mailer.outbox[-1].text), owner)
        self.laptop: Client = self.call(self.links.create_client)[0]
        self.phone: Client = self.call(self.links.create_client)[0]
        self.sign_in = self.call(self.links.create_sign_in, self.laptop, EMAIL)
        self.user_id = self.sign_in.user_id
        self.sessions_before = len(self.call(self.links.list_sessions, self.user_id))

    # -- the model's view of time ----------------------------------------------------------------

    def _budget_spent(self) -> bool:
        now = self.clock.now()
        self.wrong_this_window = [t for t in self.wrong_this_window if now - t[0] < t[1]]
        return len(self.wrong_this_window) >= ADDRESS_BUDGET

    def _live(self) -> bool:
        return bool(self.emails) and not self.failed and self.completions == 0 and not self.expired

    @property
    def expired(self) -> bool:
        return bool(self.emails) and self.clock.now() >= self.sent_at + timedelta(minutes=10)

    # -- rules -----------------------------------------------------------------------------------

    @rule(
        action=st.sampled_from(
            # wrong codes weigh most: the budgets are what the machine is here to try
            [
                *["wrong", "wrong", "wrong", "wrong", "right", "stale code"],
                *["click", "click on the phone", "stale click", "email", "minute", "hour"],
            ]
        )
    )
    def act(self, action: str) -> None:
        if action == "email" or (not self.emails and action != "minute" and action != "hour"):
            if self.completions == 0:
                self.send_an_email()
        elif action in {"wrong", "right", "stale code"}:
            self.type_a_code(newest=action != "stale code", right=action != "wrong")
        elif action in {"click", "click on the phone", "stale click"}:
            self.click_a_link(newest=action != "stale click", on_the_phone=action != "click")
        else:
            self.clock.advance(minutes=1 if action == "minute" else 61)

    def send_an_email(self) -> None:
        self.call(self.links.prepare_first_factor, self.laptop, self.sign_in.id, redirect_url="/")
        message = self.mailer.outbox[-1]
        assert message.email_code is not None
        self.emails.append(Sent(token_in(message.text), message.email_code))
        self.sent_at = self.clock.now()
        self.wrong_in_verification = 0
        self.failed = False

    def type_a_code(self, newest: bool, right: bool) -> None:
        sent = self.emails[-1] if newest else self.emails[0]
        stale = sent is not self.emails[-1]
        code = sent.code if right else _wrong(sent.code)
        would_match = code == self.emails[-1].code  # the newest email's code, however typed
        budget_spent = self._budget_spent()
        live = self._live()
        last_allowed = self.wrong_in_verification + 1 >= MAX_WRONG
        try:
            result = self.call(
                self.links.attempt_first_factor, self.laptop, self.sign_in.id, code=code
            )
        except RateLimitedError:
            assert budget_spent, "refused by a budget that was not spent"
            return
        except EmailCodeError as error:
            assert not budget_spent and live and not would_match and not last_allowed
            self._count_wrong()
            assert error.attempts_left == MAX_WRONG - self.wrong_in_verification
            return
        except MagicLinkError:
            assert not budget_spent, "a spent budget let a code be compared"
            if live:
                assert not would_match and last_allowed, "refused a code it had to take"
                self._count_wrong()
                assert self.failed
            return
        assert not budget_spent and live and would_match, "completed when it must not"
        assert result.attempt.status is SignInStatus.COMPLETE
        del stale
        self.completions += 1
        self.done_by = self.laptop

    def _count_wrong(self) -> None:
        self.wrong_in_verification += 1
        self.wrong_this_window.append((self.clock.now(), timedelta(hours=1)))
        if self.wrong_in_verification >= MAX_WRONG:
            self.failed = True

    def click_a_link(self, newest: bool, on_the_phone: bool) -> None:
        sent = self.emails[-1] if newest else self.emails[0]
        stale = sent is not self.emails[-1]
        client = self.phone if on_the_phone else self.laptop
        live = self._live()
        try:
            result = self.call(self.links.verify_link, sent.token, client)
        except (MagicLinkError, AuthError):
            assert stale or not live, "refused a link it had to take"
            return
        if result.repeated:  # used by (or for) this very client: the same answer again
            assert self.completions == 1 and not stale
            assert client is self.laptop or client is self.done_by
            return
        assert not stale and live, "a link completed when it must not"
        self.completions += 1
        self.done_by = client

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def completes_at_most_once(self) -> None:
        if not hasattr(self, "sign_in"):
            return
        stored = self.call(self.links.get_sign_in, self.laptop, self.sign_in.id)
        assert self.completions <= 1
        assert (stored.status is SignInStatus.COMPLETE) == (self.completions == 1)
        sessions = self.call(self.links.list_sessions, self.user_id)
        expected = self.sessions_before + self.completions
        # sessions may expire with time; never more than one per completion
        assert len(sessions) <= expected
        if stored.verification is not None and self.failed and not self.completions:
            assert stored.verification.status in {
                VerificationStatus.FAILED,
                VerificationStatus.EXPIRED,
            }


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


TestEmailCodesAndClicks = EmailCodeMachine.TestCase
TestEmailCodesAndClicks.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
