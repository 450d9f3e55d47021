"""What every flow module of the service needs: the settings, the ports, and the few steps they
all take (write a batch, publish a wake-up, read an attempt as of now).

One :class:`Context` is built by :class:`~magiclink_core.service.MagicLinks` and handed to the
modules named for what they do (``clients``, ``links``, ``sign_ups``, ``sign_ins``,
``email_addresses``, ``sessions``, ``attempt_waits``). It holds no request state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import anyio
import anyio.to_thread

from .delivery import Delivery
from .domain import flows, session_rules
from .domain.emails import normalise_email
from .domain.errors import ConflictError, InvalidEmailError, MailDeliveryError, NotFoundError
from .domain.models import AttemptKind, EmailAddress, Session, SignIn, SignUp
from .domain.redirects import check_redirect_url
from .domain.settings import LinkTerms, Settings
from .domain.tokens import Keyring
from .emails import EmailRenderer, LinkEmail, NoticeEmail
from .hooks import Hooks
from .ports import (
    Change,
    Clock,
    Delete,
    EmailMessage,
    Mailer,
    Notifier,
    Storage,
    Update,
    WriteConflict,
)
from .session_cache import SessionCache

logger = logging.getLogger("magiclink")

A = TypeVar("A", SignUp, SignIn, EmailAddress)
RETRIES = 5
"""How often a step re-reads and tries again after losing a compare-and-set race."""


def attempt_channel(kind: AttemptKind, attempt_id: str) -> str:
    """The notifier channel of one attempt: its waiters listen there, its changes publish."""
    return _CHANNEL_PREFIXES[kind] + attempt_id


# "magiclink:<kind>:" made once per kind: a publish is on every state change (an enum's
# ``.value`` is a Python-level property, read twice per link click otherwise)
_CHANNEL_PREFIXES = {kind: f"magiclink:{kind.value}:" for kind in AttemptKind}


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    storage: Storage
    mailer: Mailer
    notifier: Notifier
    clock: Clock
    emails: EmailRenderer
    delivery: Delivery
    hooks: Hooks = field(default_factory=Hooks)
    session_terms: session_rules.SessionTerms = field(init=False)
    session_cache: SessionCache = field(init=False)
    now: Callable[[], datetime] = field(init=False, repr=False, compare=False)
    """The current time: the clock's own ``now``, bound once (a flow reads it a dozen times)."""
    keyring: Keyring = field(init=False, repr=False, compare=False)
    """The settings' keyring, read once (every token minted or looked up digests with it)."""
    link_terms: LinkTerms = field(init=False, repr=False, compare=False)
    """The settings a link is issued and judged by, read once (see :class:`LinkTerms`)."""

    def __post_init__(self) -> None:
        s = self.settings
        terms = session_rules.SessionTerms(
            lifetime=s.session_lifetime,
            idle_timeout=s.session_idle_timeout,
            touch_interval=s.session_touch_interval,
            purge_grace=s.purge_grace,
            token_grace=s.session_token_grace,
        )
        object.__setattr__(self, "session_terms", terms)  # derived once; the context is frozen
        cache = SessionCache(self.notifier, ttl=s.session_cache_ttl, size=s.session_cache_size)
        object.__setattr__(self, "session_cache", cache)
        object.__setattr__(self, "now", self.clock.now)
        object.__setattr__(self, "keyring", s.keyring)
        object.__setattr__(self, "link_terms", s.link_terms)

    async def write(self, changes: Sequence[Change]) -> None:
        """Apply ``changes``; a lost race is a :class:`ConflictError` (nothing was written)."""
        if not await self.try_write(changes):
            raise ConflictError()

    async def try_write(self, changes: Sequence[Change]) -> bool:
        """Apply ``changes``; False when a race was lost (nothing was written). Sessions as in
        :meth:`apply`."""
        try:
            await self.apply(changes)
        except WriteConflict:
            return False
        return True

    async def apply(
        self, changes: Sequence[Change], *, sessions: Sequence[str] | None = None
    ) -> None:
        """Apply ``changes`` atomically; :raises WriteConflict: a race was lost (nothing was
        written).

        Every session the batch changes is dropped from the session cache of this instance and
        announced to the others, even when the outcome is unknown (an error). ``sessions``: the
        ids of those sessions when the caller knows them already (the batch is then not
        scanned for them).
        """
        if sessions is None:
            sessions = [
                c.id if isinstance(c, Delete) else c.record.id for c in changes if _session(c)
            ]
        try:
            await self.storage.apply(changes)
        except WriteConflict:
            raise  # nothing was written: every cached copy is still right
        except BaseException:
            if sessions:  # written or not, nobody can tell: drop the cached copies anyway
                await self._forget(sessions)
            raise
        if sessions:
            await self._forget(sessions)

    async def _forget(self, session_ids: Sequence[str]) -> None:
        with anyio.CancelScope(shield=True):
            await self.session_cache.announce(self.session_cache.forget(session_ids))

    async def publish(self, kind: AttemptKind, attempt_id: str) -> None:
        """Wake the attempt's waiters; a lost wake-up is logged, never raised."""
        try:
            await self.notifier.publish(attempt_channel(kind, attempt_id))
        except Exception:  # a lost wake-up costs waiters one read later, never correctness
            logger.warning(
                "could not publish a wake-up for %s %s", kind.value, attempt_id, exc_info=True
            )

    def render(self, email: LinkEmail | NoticeEmail) -> EmailMessage:
        """``email`` rendered, by the app's renderer. Callers render before they write, so an
        email that cannot be rendered (a custom template's typo: an undefined name) changes
        nothing; it is logged once, with its traceback, and refused as permanent (asking again
        cannot help until the template is fixed).

        :raises MailDeliveryError: the renderer raised.
        """
        try:
            return self.emails.render(email)
        except Exception as exc:
            # no token reaches the log: jinja2 names the undefined attribute, never a value, and
            # a link rendered before its write was never stored, so its token opens nothing
            logger.error(
                "could not render the %s email; nothing was sent", email.template, exc_info=exc
            )
            raise MailDeliveryError(permanent=True) from exc

    def check_redirect_url(self, url: str) -> str:
        """The absolute URL to send a clicker to. :raises InvalidRedirectError: not allowed."""
        terms = self.link_terms
        return check_redirect_url(
            url, base_url=terms.base_url, allowed_origins=terms.allowed_redirect_origins
        )

    async def email(self, raw: object) -> str:
        """The canonical form of an address (:raises InvalidEmailError:), checked for
        deliverability in a thread when the settings ask for it."""
        email = normalise_email(raw)
        if self.settings.check_deliverability:
            await anyio.to_thread.run_sync(_check_deliverability, email)
        return email

    async def owned(self, kind: type[A], owner_id: str, attempt_id: object) -> A:
        """The attempt ``attempt_id`` of ``kind`` if it belongs to ``owner_id`` (the client for
        sign-ups and sign-ins, the user for addresses), as of now.

        :raises NotFoundError: no such attempt, or not the owner's (not told apart).
        """
        record = await self.storage.get(kind, attempt_id) if isinstance(attempt_id, str) else None
        if record is None or _owner_of(record) != owner_id:
            raise NotFoundError(long_message=f"No such {_NAMES[kind]}.")
        return flows.attempt_as_of(record, self.now())


def _session(change: Change) -> bool:
    """Whether ``change`` moves a session a cache may hold (a new one cannot be held yet)."""
    if isinstance(change, Delete):
        return change.kind is Session
    return isinstance(change, Update) and type(change.record) is Session


_NAMES: dict[type[SignUp] | type[SignIn] | type[EmailAddress], str] = {
    SignUp: "sign-up",
    SignIn: "sign-in",
    EmailAddress: "email address",
}


def _owner_of(attempt: SignUp | SignIn | EmailAddress) -> str:
    return attempt.user_id if isinstance(attempt, EmailAddress) else attempt.client_id


def _check_deliverability(email: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(email, check_deliverability=True)
    except EmailNotValidError as exc:
        raise InvalidEmailError(long_message=str(exc)) from exc
