"""``MagicLinks``: the facade, and the one place that calls the ports and the domain in order.

Every method reads what it needs, asks the pure domain what the change is, and writes it with one
``Storage.apply`` (compare-and-set, all or nothing). Rejections are logged with their reason at
debug level (never a token); callers see only typed errors with stable codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread

from .domain import flows
from .domain.emails import normalise_email
from .domain.errors import (
    AuthError,
    ConflictError,
    IdentifierExistsError,
    IdentifierNotFoundError,
    InvalidEmailError,
    InvalidRequestError,
    InvalidStateError,
    MagicLinkError,
    MagicLinkErrorCode,
    MailDeliveryError,
    NotFoundError,
    RateLimitedError,
    UnauthenticatedError,
)
from .domain.models import (
    Attempt,
    AttemptKind,
    Client,
    EmailAddress,
    Link,
    Record,
    RequestInfo,
    Session,
    SessionStatus,
    SignIn,
    SignInStatus,
    SignUp,
    SignUpStatus,
    User,
    Verification,
    VerificationStatus,
)
from .domain.redirects import check_redirect_url
from .domain.settings import Settings
from .domain.tokens import TokenPurpose, new_confirmation_code, new_id, new_token
from .emails import EmailRenderer, LinkEmail
from .hooks import AuthEvent, Event, EventHook, Hooks, VetoHook
from .local_notifier import LocalNotifier
from .ports import (
    Change,
    Clock,
    Delete,
    HasNotifier,
    Insert,
    Mailer,
    Notifier,
    Storage,
    SystemClock,
    Update,
    WriteConflict,
)
from .waiting import wait_for_change

logger = logging.getLogger("magiclink")

A = TypeVar("A", SignUp, SignIn, EmailAddress)
MAX_WAIT = timedelta(seconds=30)
_RETRIES = 5


@dataclass(frozen=True, slots=True)
class LinkPreview:
    """What a click would do, read without changing anything (the link landing's GET)."""

    kind: AttemptKind
    same_client: bool
    needs_confirmation: bool
    requested_by: RequestInfo
    requested_at: datetime
    expire_at: datetime
    email_address: str
    redirect_url: str


@dataclass(frozen=True, slots=True)
class LinkResult:
    """A link that worked. ``session_token`` is set only when the clicking client owns the
    created session; a session created for another client is collected by that client through
    :meth:`MagicLinks.activate_session`."""

    kind: AttemptKind
    attempt: Attempt
    verification: Verification
    verified_from_the_same_client: bool
    redirect_url: str
    session: Session | None = None
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class ClientState:
    """A client's view of itself (``GET /v1/client``)."""

    client: Client
    sessions: list[Session]
    sign_in: SignIn | None
    sign_up: SignUp | None


def verified_from_the_same_client(attempt: Attempt) -> bool:
    """Whether the link was clicked by the client that started the attempt."""
    v = attempt.verification
    return (
        v is not None
        and v.status is VerificationStatus.VERIFIED
        and v.verified_at_client is not None
        and v.verified_at_client == attempt.client_id
    )


def attempt_channel(kind: AttemptKind, attempt_id: str) -> str:
    return f"magiclink:{kind.value}:{attempt_id}"


class MagicLinks:
    """Sign-up, sign-in and email verification by magic link, with sessions.

    :param settings: the app's :class:`Settings`.
    :param storage: a :class:`~magiclink_core.ports.Storage` adapter.
    :param mailer: a :class:`~magiclink_core.ports.Mailer` adapter.
    :param notifier: wakes waiters; defaults to the storage's own (PostgreSQL, Redis) or an
        in-process one.
    :param clock: defaults to the system clock; tests pass a fake one.
    :param emails: an :class:`EmailRenderer`, to use your own templates.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage,
        mailer: Mailer,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        emails: EmailRenderer | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.mailer = mailer
        if notifier is None:
            notifier = storage.notifier() if isinstance(storage, HasNotifier) else LocalNotifier()
        self.notifier = notifier
        self.clock = clock or SystemClock()
        self.emails = emails or EmailRenderer()
        self.hooks = Hooks()
        self._keyring = settings.keyring

    async def aclose(self) -> None:
        """Release the notifier and the storage's connections (call it at shutdown)."""
        try:
            await self.notifier.close()
        finally:
            await self.storage.close()

    async def __aenter__(self) -> MagicLinks:
        await self.notifier.__aenter__()  # a shared notifier starts listening (see waiting.py)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.notifier.__aexit__(*exc_info)
        finally:
            await self.aclose()

    # -- hooks -------------------------------------------------------------------------------

    def on(self, event: Event | str, hook: EventHook) -> EventHook:
        """Call ``hook(AuthEvent)`` after ``event``."""
        return self.hooks.on(event, hook)

    def before_sign_up(self, hook: VetoHook) -> VetoHook:
        """Call ``hook(email)`` before a sign-up is created; ``False`` refuses it."""
        return self.hooks.before("sign_up", hook)

    def before_sign_in(self, hook: VetoHook) -> VetoHook:
        """Call ``hook(email)`` before a sign-in is created; ``False`` refuses it."""
        return self.hooks.before("sign_in", hook)

    # -- clients -----------------------------------------------------------------------------

    async def create_client(self) -> tuple[Client, str]:
        """A new client and its token (the plaintext goes only into the client's cookie)."""
        now = self.clock.now()
        token = new_token(TokenPurpose.CLIENT)
        client = Client(
            id=new_id(Client.id_prefix),
            token_digest=self._keyring.digest(token, TokenPurpose.CLIENT),
            created_at=now,
            updated_at=now,
            last_active_at=now,
            purge_after=now + self.settings.client_ttl,
        )
        await self.storage.apply([Insert(client)])
        return client, token

    async def get_client(self, token: str | None) -> Client | None:
        """The client a token belongs to, or None for a missing, malformed or unknown one."""
        if not token:
            return None
        for digest in self._keyring.candidate_digests(token, TokenPurpose.CLIENT):
            client = await self.storage.find(Client, "token_digest", digest)
            if client is not None:
                return client
        return None

    async def client_state(self, client: Client) -> ClientState:
        """The client's live sessions and its sign-in and sign-up in progress."""
        client = await self.storage.get(Client, client.id) or client  # its newest attempts
        now = self.clock.now()
        sessions = [
            s
            for s in await self.storage.list(Session, "client_id", client.id)
            if s.token_digest is not None
            and flows.session_expiry_reason(s, now, self.settings.session_idle_timeout) is None
        ]
        sign_in = await self._maybe_get(SignIn, client.sign_in_id, client)
        sign_up = await self._maybe_get(SignUp, client.sign_up_id, client)
        return ClientState(client, sessions, sign_in, sign_up)

    async def _maybe_get(self, kind: type[A], attempt_id: str | None, client: Client) -> A | None:
        if attempt_id is None:
            return None
        record = await self.storage.get(kind, attempt_id)
        if record is None or record.client_id != client.id:
            return None
        return self._as_of(record, self.clock.now())

    # -- sign-ups ----------------------------------------------------------------------------

    async def create_sign_up(self, client: Client, email_address: object) -> SignUp:
        """Start a sign-up (status ``missing_requirements``).

        :raises InvalidEmailError: the address is not valid.
        :raises NotAllowedError: a ``before_sign_up`` hook refused.
        :raises IdentifierExistsError: the address has an account (only with enumeration
            protection off; with it on, the sign-up runs and its link signs the owner in).
        """
        email = await self._email(email_address)
        await self.hooks.check("sign_up", email)
        if not self.settings.enumeration_protection and (
            await self.storage.find(EmailAddress, "claimed_email", email) is not None
        ):
            raise IdentifierExistsError()
        now = self.clock.now()
        sign_up = SignUp(
            id=new_id(SignUp.id_prefix),
            client_id=client.id,
            email_address=email,
            created_at=now,
            updated_at=now,
            abandon_at=now + self.settings.attempt_ttl,
            purge_after=now + self.settings.attempt_ttl + self.settings.purge_grace,
        )
        await self._start_attempt(client, sign_up, "sign_up_id")
        return sign_up

    async def prepare_sign_up_verification(
        self,
        client: Client,
        sign_up_id: str,
        *,
        redirect_url: str,
        request: RequestInfo | None = None,
    ) -> SignUp:
        """Email a sign-up link.

        :raises NotFoundError: no such sign-up for this client.
        :raises InvalidStateError: the sign-up is no longer in progress.
        :raises InvalidRedirectError: ``redirect_url`` is not allowed.
        :raises RateLimitedError: too many links were sent to the address lately.
        :raises MailDeliveryError: the email could not be sent (the sign-up stays resendable).
        """
        sign_up = await self.get_sign_up(client, sign_up_id)
        if sign_up.status is not SignUpStatus.MISSING_REQUIREMENTS:
            raise InvalidStateError(long_message="This sign-up is already complete.")
        return await self._send_link(
            sign_up, AttemptKind.SIGN_UP, sign_up.email_address, "sign_up", redirect_url, request
        )

    async def get_sign_up(self, client: Client, sign_up_id: str) -> SignUp:
        """:raises NotFoundError: no such sign-up for this client."""
        return await self._owned(SignUp, client, sign_up_id)

    # -- sign-ins ----------------------------------------------------------------------------

    async def create_sign_in(self, client: Client, identifier: object) -> SignIn:
        """Start a sign-in (status ``needs_first_factor``).

        With enumeration protection (the default) an address with no account gets a sign-in
        like any other; its email says there is no account instead of carrying a link.

        :raises InvalidEmailError: the identifier is not a valid email address.
        :raises NotAllowedError: a ``before_sign_in`` hook refused.
        :raises IdentifierNotFoundError: no account (only with enumeration protection off).
        """
        email = await self._email(identifier)
        await self.hooks.check("sign_in", email)
        address = await self.storage.find(EmailAddress, "claimed_email", email)
        if address is None and not self.settings.enumeration_protection:
            raise IdentifierNotFoundError()
        now = self.clock.now()
        sign_in = SignIn(
            id=new_id(SignIn.id_prefix),
            client_id=client.id,
            identifier=email,
            user_id=address.user_id if address else None,
            email_address_id=address.id if address else new_id(EmailAddress.id_prefix),
            created_at=now,
            updated_at=now,
            abandon_at=now + self.settings.attempt_ttl,
            purge_after=now + self.settings.attempt_ttl + self.settings.purge_grace,
        )
        await self._start_attempt(client, sign_in, "sign_in_id")
        return sign_in

    async def prepare_first_factor(
        self,
        client: Client,
        sign_in_id: str,
        *,
        email_address_id: str | None = None,
        redirect_url: str,
        request: RequestInfo | None = None,
    ) -> SignIn:
        """Email a sign-in link (the guide's ``prepareFirstFactor`` with ``email_link``).

        :raises NotFoundError: no such sign-in for this client.
        :raises InvalidRequestError: ``email_address_id`` is not one of the supported factors.
        :raises InvalidStateError: the sign-in is no longer in progress.
        :raises InvalidRedirectError, RateLimitedError, MailDeliveryError: as for sign-ups.
        """
        sign_in = await self.get_sign_in(client, sign_in_id)
        if email_address_id is not None and email_address_id != sign_in.email_address_id:
            raise InvalidRequestError(
                long_message="email_address_id is not a factor of this sign-in."
            )
        if sign_in.status is not SignInStatus.NEEDS_FIRST_FACTOR:
            raise InvalidStateError(long_message="This sign-in is already complete.")
        template = "sign_in" if sign_in.user_id is not None else "sign_in_no_account"
        return await self._send_link(
            sign_in, AttemptKind.SIGN_IN, sign_in.identifier, template, redirect_url, request
        )

    async def get_sign_in(self, client: Client, sign_in_id: str) -> SignIn:
        """:raises NotFoundError: no such sign-in for this client."""
        return await self._owned(SignIn, client, sign_in_id)

    # -- a signed-in user's email addresses --------------------------------------------------

    async def add_email_address(self, session: Session, email_address: object) -> EmailAddress:
        """Add an unverified address to the session's user.

        :raises InvalidEmailError: not a valid address.
        :raises IdentifierExistsError: the user has this address already.
        """
        email = await self._email(email_address)
        for existing in await self.storage.list(EmailAddress, "user_id", session.user_id):
            if existing.email == email:
                raise IdentifierExistsError(long_message="You have added this address already.")
        now = self.clock.now()
        address = EmailAddress(
            id=new_id(EmailAddress.id_prefix),
            user_id=session.user_id,
            email=email,
            client_id=session.client_id,
            created_at=now,
            updated_at=now,
        )
        await self.storage.apply([Insert(address)])
        return address

    async def prepare_email_verification(
        self,
        session: Session,
        email_address_id: str,
        *,
        redirect_url: str,
        request: RequestInfo | None = None,
    ) -> EmailAddress:
        """Email a link that verifies one of the user's addresses.

        :raises NotFoundError: not an address of this user.
        :raises InvalidStateError: the address is verified already.
        """
        address = await self.get_email_address(session, email_address_id)
        if address.verified:
            raise InvalidStateError(long_message="This address is verified already.")
        if address.client_id != session.client_id:
            address = address.bumped(self.clock.now(), client_id=session.client_id)
            await self._write([Update(address)])
        return await self._send_link(
            address, AttemptKind.EMAIL_ADDRESS, address.email, "verify_email", redirect_url, request
        )

    async def get_email_address(self, session: Session, email_address_id: str) -> EmailAddress:
        """:raises NotFoundError: not an address of this session's user."""
        address = await self.storage.get(EmailAddress, email_address_id)
        if address is None or address.user_id != session.user_id:
            raise NotFoundError(long_message="No such email address.")
        return self._as_of(address, self.clock.now())

    async def list_email_addresses(self, user_id: str) -> list[EmailAddress]:
        now = self.clock.now()
        return [
            self._as_of(a, now) for a in await self.storage.list(EmailAddress, "user_id", user_id)
        ]

    async def set_primary_email_address(self, session: Session, email_address_id: str) -> User:
        """:raises InvalidStateError: the address is not verified."""
        address = await self.get_email_address(session, email_address_id)
        if not address.verified:
            raise InvalidStateError(long_message="Verify this address before making it primary.")
        user = await self.get_user(session.user_id)
        if user.primary_email_address_id == address.id:
            return user
        updated = user.bumped(self.clock.now(), primary_email_address_id=address.id)
        await self._write([Update(updated)])
        return updated

    async def remove_email_address(self, session: Session, email_address_id: str) -> None:
        """:raises InvalidStateError: it is the primary address (make another primary first)."""
        address = await self.get_email_address(session, email_address_id)
        user = await self.get_user(session.user_id)
        if user.primary_email_address_id == address.id:
            raise InvalidStateError(
                long_message="This is your primary address: make another one primary first."
            )
        await self._write([Delete(EmailAddress, address.id, address.version)])

    async def get_user(self, user_id: str) -> User:
        user = await self.storage.get(User, user_id)
        if user is None:
            raise NotFoundError(long_message="No such user.")
        return user

    async def primary_email(self, user: User) -> str | None:
        if user.primary_email_address_id is None:
            return None
        address = await self.storage.get(EmailAddress, user.primary_email_address_id)
        return address.email if address else None

    # -- links -------------------------------------------------------------------------------

    async def inspect_link(self, token: str, client: Client | None) -> LinkPreview:
        """What a click on the link would do, changing nothing (safe for mail scanners).

        :raises MagicLinkError: the link would not work (expired, failed, client_mismatch).
        """
        link, attempt = await self._load_link(token)
        decision = self._judge(link, attempt, client, confirmation_code=None)
        if decision.error is not None:
            raise decision.error
        verification = attempt.verification
        assert verification is not None
        return LinkPreview(
            kind=link.attempt_kind,
            same_client=decision.same_client,
            needs_confirmation=decision.outcome is flows.ClickOutcome.NEEDS_CONFIRMATION,
            requested_by=verification.requested_by,
            requested_at=verification.requested_at,
            expire_at=min(link.expire_at, verification.expire_at),
            email_address=_attempt_email(attempt),
            redirect_url=verification.redirect_url,
        )

    async def verify_link(
        self,
        token: str,
        client: Client | None,
        *,
        confirmation_code: str | None = None,
        request: RequestInfo | None = None,
    ) -> LinkResult:
        """Consume a link: the one click that completes its attempt.

        :raises MagicLinkError: expired, used, unknown, tampered with, superseded, or refused by
            the cross-device policy (``client_mismatch``).
        :raises ConfirmationCodeError: policy ``confirm``, another client, and a wrong code
            (some tries left; the last wrong one raises ``MagicLinkError(failed)``).
        :raises InvalidStateError: policy ``confirm``, another client, and no code given.
        """
        for _ in range(_RETRIES):
            link, attempt = await self._load_link(token)
            decision = self._judge(link, attempt, client, confirmation_code=confirmation_code)
            if decision.outcome is flows.ClickOutcome.NEEDS_CONFIRMATION:
                raise InvalidStateError(
                    long_message="Type the code shown on the device that asked for this link."
                )
            if decision.outcome is flows.ClickOutcome.REJECTED:
                assert decision.error is not None
                if decision.verification is not None:
                    updated = attempt.bumped(self.clock.now(), verification=decision.verification)
                    if not await self._try_write([Update(updated)]):
                        continue
                    await self._publish(link.attempt_kind, attempt.id)
                logger.debug("link rejected: %s", getattr(decision.error, "long_message", ""))
                raise decision.error
            assert decision.verification is not None and decision.link is not None
            try:
                result = await self._complete(
                    attempt, decision.link, decision.verification, client, request
                )
            except WriteConflict as conflict:
                if conflict.unique_field == "claimed_email" and isinstance(attempt, EmailAddress):
                    await self._fail_claim(attempt, decision.link)
                    raise MagicLinkError(
                        MagicLinkErrorCode.FAILED,
                        "This address belongs to another account.",
                    ) from None
                continue
            await self._publish(link.attempt_kind, attempt.id)
            return result
        raise ConflictError()

    async def resend_link(self, token: str, *, request: RequestInfo | None = None) -> AttemptKind:
        """Email a fresh link for the attempt an expired (or superseded) link belonged to, to the
        same address, for the same client and redirect. For the expired-link page's resend
        button: holding the old link proves nothing new and reveals nothing, since the new link
        goes to the same mailbox.

        :raises MagicLinkError: the link is unknown, or its attempt is no longer in progress.
        :raises RateLimitedError, MailDeliveryError: as when preparing.
        """
        link, attempt = await self._load_link(token)
        verification = attempt.verification
        in_progress = (
            (isinstance(attempt, SignUp) and attempt.status is SignUpStatus.MISSING_REQUIREMENTS)
            or (isinstance(attempt, SignIn) and attempt.status is SignInStatus.NEEDS_FIRST_FACTOR)
            or (isinstance(attempt, EmailAddress) and not attempt.verified)
        )
        if not in_progress or verification is None or link.consumed_at is not None:
            raise MagicLinkError(MagicLinkErrorCode.FAILED, "This link can no longer be renewed.")
        template = {
            AttemptKind.SIGN_UP: "sign_up",
            AttemptKind.SIGN_IN: "sign_in",
            AttemptKind.EMAIL_ADDRESS: "verify_email",
        }[link.attempt_kind]
        renewable: Any = attempt  # one of the three attempt types; _send_link is generic over them
        await self._send_link(
            renewable,
            link.attempt_kind,
            _attempt_email(attempt),
            template,
            verification.redirect_url,
            request or verification.requested_by,
        )
        return link.attempt_kind

    async def _load_link(self, token: str) -> tuple[Link, Attempt]:
        for digest in self._keyring.candidate_digests(token, TokenPurpose.LINK):
            link = await self.storage.get(Link, digest)
            if link is not None:
                break
        else:
            logger.debug("link rejected: unknown or malformed token")
            raise MagicLinkError(MagicLinkErrorCode.FAILED, "This link is not valid.")
        attempt = await self.storage.get(_ATTEMPT_TYPES[link.attempt_kind], link.attempt_id)
        if attempt is None:
            raise MagicLinkError(MagicLinkErrorCode.FAILED, "This link is no longer valid.")
        return link, attempt

    def _judge(
        self, link: Link, attempt: Attempt, client: Client | None, *, confirmation_code: str | None
    ) -> flows.ClickDecision:
        decision = flows.judge_click(
            link=link,
            verification=attempt.verification,
            clicking_client_id=client.id if client else None,
            policy=self.settings.cross_device,
            confirmation_code=confirmation_code,
            max_code_attempts=self.settings.max_confirmation_code_attempts,
            now=self.clock.now(),
        )
        if (
            isinstance(decision.error, MagicLinkError)
            and decision.same_client
            and attempt.verification is not None
        ):
            # the app that asked may show its own page for a dead link (and resend from there);
            # anyone else gets the generic page, so a scanner is never sent into the app
            decision.error.redirect_url = attempt.verification.redirect_url
        return decision

    async def _complete(
        self,
        attempt: Attempt,
        link: Link,
        verification: Verification,
        client: Client | None,
        request: RequestInfo | None,
    ) -> LinkResult:
        now = self.clock.now()
        changes: list[Change] = [Update(link)]
        events: list[AuthEvent] = []
        session: Session | None = None
        token: str | None = None
        owner_clicked = client is not None and client.id == link.client_id

        if isinstance(attempt, EmailAddress):
            done: Attempt = attempt.bumped(
                now, verification=verification, claimed_email=attempt.email
            )
            changes.append(Update(done))
            user = await self.get_user(attempt.user_id)
            if user.primary_email_address_id is None:
                changes.append(Update(user.bumped(now, primary_email_address_id=attempt.id)))
            events.append(
                AuthEvent(
                    Event.EMAIL_ADDRESS_VERIFIED,
                    user_id=attempt.user_id,
                    email_address=attempt.email,
                    attempt_id=attempt.id,
                )
            )
        else:
            email = _attempt_email(attempt)
            existing = await self.storage.find(EmailAddress, "claimed_email", email)
            if existing is not None:
                user_id = existing.user_id
            elif isinstance(attempt, SignIn):
                # the account's address was removed or it never existed: nothing to sign in to
                raise MagicLinkError(MagicLinkErrorCode.FAILED, "This account no longer exists.")
            else:
                user_id = new_id(User.id_prefix)
                address_id = new_id(EmailAddress.id_prefix)
                changes.append(
                    Insert(
                        User(
                            id=user_id,
                            primary_email_address_id=address_id,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                )
                changes.append(
                    Insert(
                        EmailAddress(
                            id=address_id,
                            user_id=user_id,
                            email=email,
                            claimed_email=email,
                            verification=verification,
                            client_id=link.client_id,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                )
                events.append(AuthEvent(Event.USER_CREATED, user_id=user_id, email_address=email))
            if owner_clicked:
                token = new_token(TokenPurpose.SESSION)
            starter = (
                request
                if owner_clicked
                else attempt.verification.requested_by
                if attempt.verification
                else None
            )
            session = self._new_session(user_id, link.client_id, now, token, starter)
            changes.append(Insert(session))
            if isinstance(attempt, SignUp):
                done = attempt.bumped(
                    now,
                    status=SignUpStatus.COMPLETE,
                    verification=verification,
                    created_user_id=user_id,
                    created_session_id=session.id,
                )
                flows.check_transition(
                    flows.SIGN_UP_TRANSITIONS, attempt.status, SignUpStatus.COMPLETE
                )
                events.append(
                    AuthEvent(
                        Event.SIGN_UP_COMPLETED,
                        user_id=user_id,
                        session_id=session.id,
                        attempt_id=attempt.id,
                        email_address=email,
                        client_id=link.client_id,
                    )
                )
            else:
                done = attempt.bumped(
                    now,
                    status=SignInStatus.COMPLETE,
                    verification=verification,
                    created_session_id=session.id,
                )
                flows.check_transition(
                    flows.SIGN_IN_TRANSITIONS, attempt.status, SignInStatus.COMPLETE
                )
                events.append(
                    AuthEvent(
                        Event.SIGN_IN_COMPLETED,
                        user_id=user_id,
                        session_id=session.id,
                        attempt_id=attempt.id,
                        email_address=email,
                        client_id=link.client_id,
                    )
                )
            changes.append(Update(done))
            events.append(
                AuthEvent(
                    Event.SESSION_CREATED,
                    user_id=user_id,
                    session_id=session.id,
                    client_id=link.client_id,
                )
            )
        await self.storage.apply(changes)
        await self.hooks.emit(*events)
        return LinkResult(
            kind=link.attempt_kind,
            attempt=done,
            verification=verification,
            verified_from_the_same_client=owner_clicked,
            redirect_url=verification.redirect_url,
            session=session,
            session_token=token,
        )

    async def _fail_claim(self, address: EmailAddress, link: Link) -> None:
        assert address.verification is not None
        failed = address.verification.model_copy(update={"status": VerificationStatus.FAILED})
        await self._try_write(
            [Update(link), Update(address.bumped(self.clock.now(), verification=failed))]
        )
        await self._publish(AttemptKind.EMAIL_ADDRESS, address.id)

    # -- sessions ----------------------------------------------------------------------------

    def _new_session(
        self,
        user_id: str,
        client_id: str,
        now: datetime,
        token: str | None,
        request: RequestInfo | None,
    ) -> Session:
        expire_at = now + self.settings.session_lifetime
        return Session(
            id=new_id(Session.id_prefix),
            user_id=user_id,
            client_id=client_id,
            token_digest=None
            if token is None
            else self._keyring.digest(token, TokenPurpose.SESSION),
            created_at=now,
            updated_at=now,
            last_active_at=now,
            expire_at=expire_at,
            purge_after=expire_at + self.settings.purge_grace,
            user_agent=(request.device or request.user_agent[:200]) if request else "",
            ip_address=request.ip_address if request else "",
        )

    async def authenticate(self, session_token: str | None) -> Session | None:
        """The live session a session token belongs to, or None. The hot path: one keyed digest
        and one storage read; the idle-timeout touch writes at most once per touch interval."""
        if not session_token:
            return None
        digests = self._keyring.candidate_digests(session_token, TokenPurpose.SESSION)
        session = None
        for digest in digests:
            session = await self.storage.find(Session, "token_digest", digest)
            if session is not None:
                break
        if session is None:
            return None
        now = self.clock.now()
        if (
            flows.session_expiry_reason(session, now, self.settings.session_idle_timeout)
            is not None
        ):
            return None
        if flows.needs_touch(session, now, self.settings.session_touch_interval):
            touched = session.bumped(now, last_active_at=now)
            if await self._try_write([Update(touched)]):
                return touched
        return session

    async def activate_session(self, client: Client, session_id: str) -> tuple[Session, str]:
        """Make one of the client's sessions the active one and issue its token (the guide's
        ``setSession``). This is how a client collects a session completed on another device.
        The token is fresh each time; the client's other sessions end.

        :raises NotFoundError: not a live session of this client.
        """
        now = self.clock.now()
        for _ in range(_RETRIES):
            session = await self.storage.get(Session, session_id)
            if (
                session is None
                or session.client_id != client.id
                or flows.session_expiry_reason(session, now, self.settings.session_idle_timeout)
                is not None
            ):
                raise NotFoundError(long_message="No such session.")
            token = new_token(TokenPurpose.SESSION)
            changes: list[Change] = [
                Update(
                    session.bumped(
                        now,
                        token_digest=self._keyring.digest(token, TokenPurpose.SESSION),
                        last_active_at=now,
                    )
                )
            ]
            others = [
                s
                for s in await self.storage.list(Session, "client_id", client.id)
                if s.id != session.id and s.status is SessionStatus.ACTIVE
            ]
            changes += [
                Update(flows.end_session(s, now, SessionStatus.ENDED, self.settings.purge_grace))
                for s in others
            ]
            if await self._try_write(changes):
                await self.hooks.emit(
                    *[
                        AuthEvent(
                            Event.SESSION_ENDED,
                            user_id=s.user_id,
                            session_id=s.id,
                            client_id=client.id,
                        )
                        for s in others
                    ]
                )
                activated = changes[0]
                assert isinstance(activated, Update) and isinstance(activated.record, Session)
                return activated.record, token
        raise ConflictError()

    async def touch_session(self, session: Session) -> Session:
        """Record activity now, whatever the touch interval."""
        touched = session.bumped(self.clock.now(), last_active_at=self.clock.now())
        await self._write([Update(touched)])
        return touched

    async def end_session(
        self,
        session_id: str,
        *,
        client: Client | None = None,
        user_id: str | None = None,
        status: SessionStatus = SessionStatus.ENDED,
    ) -> Session:
        """Sign a session out. Allowed to the client that holds it or to its user.

        :raises NotFoundError: no such session for that client or user.
        """
        for _ in range(_RETRIES):
            session = await self.storage.get(Session, session_id)
            if session is None or not (
                (client is not None and session.client_id == client.id)
                or (user_id is not None and session.user_id == user_id)
            ):
                raise NotFoundError(long_message="No such session.")
            if session.status is not SessionStatus.ACTIVE:
                return session
            ended = flows.end_session(session, self.clock.now(), status, self.settings.purge_grace)
            if await self._try_write([Update(ended)]):
                await self.hooks.emit(
                    AuthEvent(
                        Event.SESSION_ENDED,
                        user_id=session.user_id,
                        session_id=session.id,
                        client_id=session.client_id,
                    )
                )
                return ended
        raise ConflictError()

    async def list_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions, oldest first."""
        now = self.clock.now()
        return [
            s
            for s in await self.storage.list(Session, "user_id", user_id)
            if flows.session_expiry_reason(s, now, self.settings.session_idle_timeout) is None
        ]

    async def revoke_sessions(self, user_id: str) -> int:
        """End every live session of a user (say, after an account compromise); returns how many."""
        ended = 0
        for session in await self.list_sessions(user_id):
            result = await self.end_session(
                session.id, user_id=user_id, status=SessionStatus.REVOKED
            )
            ended += result.status is SessionStatus.REVOKED
        return ended

    async def require_session(self, session_token: str | None) -> Session:
        """:raises UnauthenticatedError: no live session for the token."""
        session = await self.authenticate(session_token)
        if session is None:
            raise UnauthenticatedError()
        return session

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for_sign_up(
        self,
        client: Client,
        sign_up_id: str,
        *,
        timeout: timedelta = MAX_WAIT,
        since_version: int | None = None,
        cancelled: anyio.Event | None = None,
    ) -> SignUp:
        """Wait until the sign-up changes (or leaves ``unverified``), at most ``timeout``.

        Answers at once when ``since_version`` is older than the stored version, or when the
        verification is already over (verified, expired, failed). ``cancelled`` ends the wait
        early with the attempt as it is (the guide's ``cancelMagicLinkFlow``).
        """
        return await self._wait(
            SignUp,
            AttemptKind.SIGN_UP,
            lambda: self.get_sign_up(client, sign_up_id),
            sign_up_id,
            timeout,
            since_version,
            cancelled,
        )

    async def wait_for_sign_in(
        self,
        client: Client,
        sign_in_id: str,
        *,
        timeout: timedelta = MAX_WAIT,
        since_version: int | None = None,
        cancelled: anyio.Event | None = None,
    ) -> SignIn:
        """Wait until the sign-in changes (or leaves ``unverified``), at most ``timeout``."""
        return await self._wait(
            SignIn,
            AttemptKind.SIGN_IN,
            lambda: self.get_sign_in(client, sign_in_id),
            sign_in_id,
            timeout,
            since_version,
            cancelled,
        )

    async def wait_for_email_address(
        self,
        session: Session,
        email_address_id: str,
        *,
        timeout: timedelta = MAX_WAIT,
        since_version: int | None = None,
        cancelled: anyio.Event | None = None,
    ) -> EmailAddress:
        """Wait until the address's verification changes, at most ``timeout``."""
        return await self._wait(
            EmailAddress,
            AttemptKind.EMAIL_ADDRESS,
            lambda: self.get_email_address(session, email_address_id),
            email_address_id,
            timeout,
            since_version,
            cancelled,
        )

    async def _wait(
        self,
        kind: type[A],
        attempt_kind: AttemptKind,
        load: Callable[[], Any],
        attempt_id: str,
        timeout: timedelta,
        since_version: int | None,
        cancelled: anyio.Event | None,
    ) -> A:
        first: A = await load()  # ownership check before subscribing
        if (
            first.verification is not None
            and _status_of(first) is not VerificationStatus.UNVERIFIED
        ):
            return first  # its verification is over (verified, expired, failed): nothing to await
        start_version = first.version if since_version is None else since_version
        start_status = _status_of(first)
        timeout = min(max(timeout, timedelta(0)), MAX_WAIT)
        if first.verification is not None and _status_of(first) is VerificationStatus.UNVERIFIED:
            # expiry is not a write: wake up when it happens
            until_expiry = (
                first.verification.expire_at - self.clock.now() + timedelta(milliseconds=50)
            )
            timeout = min(timeout, max(until_expiry, timedelta(0)))

        def done(current: A) -> bool:
            return current.version != start_version or _status_of(current) is not start_status

        result: A = await wait_for_change(
            notifier=self.notifier,
            channel=attempt_channel(attempt_kind, attempt_id),
            load=load,
            done=done,
            timeout=timeout,
            poll_interval=self.settings.wait_poll_interval,
            cancelled=cancelled,
        )
        return result

    async def _publish(self, kind: AttemptKind, attempt_id: str) -> None:
        try:
            await self.notifier.publish(attempt_channel(kind, attempt_id))
        except Exception:  # a lost wake-up costs one poll interval, never correctness
            logger.warning(
                "could not publish a wake-up for %s %s", kind.value, attempt_id, exc_info=True
            )

    # -- upkeep ------------------------------------------------------------------------------

    async def purge_expired(self, *, batch: int = 1000) -> int:
        """Delete records past their ``purge_after``, in batches; returns how many."""
        total = 0
        while True:
            removed = await self.storage.purge(self.clock.now(), limit=batch)
            total += removed
            if removed < batch:
                return total
            await anyio.lowlevel.checkpoint()  # let live traffic in between batches

    async def purge_periodically(
        self,
        every: timedelta = timedelta(hours=1),
        *,
        batch: int = 1000,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Purge now and then every ``every``, until cancelled: start it in a task group (for
        instance in the app's lifespan). A failed round is logged and tried again next time;
        running it on several instances at once is harmless."""
        task_status.started()
        while True:
            try:
                removed = await self.purge_expired(batch=batch)
                logger.debug("purged %d expired records", removed)
            except Exception:
                logger.exception("purging expired records failed; trying again later")
            await anyio.sleep(every.total_seconds())

    # -- shared steps ------------------------------------------------------------------------

    async def _email(self, raw: object) -> str:
        email = normalise_email(raw)
        if self.settings.check_deliverability:
            await anyio.to_thread.run_sync(_check_deliverability, email)
        return email

    async def _owned(self, kind: type[A], client: Client, attempt_id: str) -> A:
        record = await self.storage.get(kind, attempt_id) if isinstance(attempt_id, str) else None
        if record is None or record.client_id != client.id:
            raise NotFoundError(long_message=f"No such {kind.__name__.lower()}.")
        return self._as_of(record, self.clock.now())

    @staticmethod
    def _as_of(attempt: A, now: datetime) -> A:
        if attempt.verification is None:
            return attempt
        current = flows.as_of(attempt.verification, now)
        return (
            attempt
            if current is attempt.verification
            else attempt.model_copy(update={"verification": current})
        )

    async def _start_attempt(self, client: Client, attempt: SignUp | SignIn, field: str) -> None:
        current = client
        for _ in range(_RETRIES):
            now = self.clock.now()
            updated = current.bumped(
                now,
                **{field: attempt.id},
                last_active_at=now,
                purge_after=now + self.settings.client_ttl,
            )
            if await self._try_write([Insert(attempt), Update(updated)]):
                return
            fresh = await self.storage.get(Client, client.id)
            if fresh is None:
                raise NotFoundError(long_message="This client no longer exists.")
            current = fresh
        raise ConflictError()

    async def _send_link(
        self,
        attempt: A,
        kind: AttemptKind,
        to: str,
        template: str,
        redirect_url: str,
        request: RequestInfo | None,
    ) -> A:
        redirect = check_redirect_url(
            redirect_url,
            base_url=self.settings.base_url,
            allowed_origins=self.settings.allowed_redirect_origins,
        )
        now = self.clock.now()
        await self._rate_limit(to, now)
        token = new_token(TokenPurpose.LINK)
        digest = self._keyring.digest(token, TokenPurpose.LINK)
        request = request or RequestInfo()
        verification = flows.new_verification(
            now=now,
            ttl=self.settings.link_ttl,
            link_id=digest,
            redirect_url=redirect,
            confirmation_code=new_confirmation_code(self.settings.confirmation_code_digits),
            requested_by=request,
        )
        owner = attempt.client_id or ""
        link = Link(
            id=digest,
            attempt_kind=kind,
            attempt_id=attempt.id,
            client_id=owner,
            expire_at=verification.expire_at,
            created_at=now,
            updated_at=now,
            purge_after=verification.expire_at + self.settings.purge_grace,
        )
        prepared = attempt.bumped(now, verification=verification)
        has_link = template != "sign_in_no_account"
        await self._write([Insert(link), Update(prepared)] if has_link else [Update(prepared)])
        message = self.emails.render(
            LinkEmail(
                kind=template,
                to=to,
                app_name=self.settings.app_name,
                base_url=self.settings.base_url,
                link_url=f"{self.settings.verify_url}?token={token}" if has_link else None,
                valid_for=self.settings.link_ttl,
                device=request.described,
                ip_address=request.ip_address,
                requested_at=now,
            )
        )
        try:
            await self.mailer.send(message)
        except BaseException as exc:
            # no link may exist that was never sent: take it back, leave the attempt resendable,
            # also when the send was cancelled (a client gone, a caller's timeout)
            with anyio.CancelScope(shield=True):
                await self._withdraw(prepared, attempt, link if has_link else None)
            if not isinstance(exc, Exception):
                raise
            logger.warning("sending a %s email failed: %s", template, type(exc).__name__)
            if isinstance(exc, MailDeliveryError):
                raise
            raise MailDeliveryError() from exc
        await self._publish(kind, attempt.id)
        return prepared

    async def _withdraw(self, prepared: A, previous: A, link: Link | None) -> None:
        """Undo a prepare whose email was not sent. The link goes on its own, so a concurrent
        change to the attempt cannot keep an unsent link alive; the attempt goes back to its
        previous verification only if nothing changed it meanwhile."""
        if link is not None and not await self._try_write([Delete(Link, link.id, link.version)]):
            logger.error("could not withdraw an unsent link for %s", previous.id)
        restored = prepared.bumped(self.clock.now(), verification=previous.verification)
        await self._try_write([Update(restored)])

    async def _rate_limit(self, email: str, now: datetime) -> None:
        if not self.settings.links_per_address:
            return
        count, reset_at = await self.storage.increment(
            f"links:{email}", window=self.settings.links_per_address_window, now=now
        )
        if count > self.settings.links_per_address:
            raise RateLimitedError(retry_after=reset_at - now)

    async def _write(self, changes: Sequence[Change]) -> None:
        try:
            await self.storage.apply(changes)
        except WriteConflict as exc:
            raise ConflictError() from exc

    async def _try_write(self, changes: Sequence[Change]) -> bool:
        try:
            await self.storage.apply(changes)
        except WriteConflict:
            return False
        return True


_ATTEMPT_TYPES: dict[AttemptKind, type[SignUp] | type[SignIn] | type[EmailAddress]] = {
    AttemptKind.SIGN_UP: SignUp,
    AttemptKind.SIGN_IN: SignIn,
    AttemptKind.EMAIL_ADDRESS: EmailAddress,
}


def _attempt_email(attempt: Attempt) -> str:
    if isinstance(attempt, SignUp):
        return attempt.email_address
    if isinstance(attempt, SignIn):
        return attempt.identifier
    return attempt.email


def _status_of(attempt: Attempt) -> VerificationStatus | None:
    return attempt.verification.status if attempt.verification is not None else None


def _check_deliverability(email: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(email, check_deliverability=True)
    except EmailNotValidError as exc:
        raise InvalidEmailError(long_message=str(exc)) from exc


__all__ = [
    "AuthError",
    "ClientState",
    "LinkPreview",
    "LinkResult",
    "MagicLinks",
    "Record",
    "attempt_channel",
    "verified_from_the_same_client",
]
