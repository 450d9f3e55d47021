"""``MagicLinks``: the one facade users import. It holds the settings and the adapters and
delegates each call to the module named for what it does (a signed-in user's addresses and
sessions, and the waits, are methods of its mixins in ``account.py`` and ``attempt_waits.py``):

    clients.py          clients, and starting an attempt (abandoning the one it replaces)
    sign_ups.py         sign-ups
    sign_ins.py         sign-ins
    email_addresses.py  a signed-in user's addresses
    links.py            issuing a link, the click that consumes it, resending
    sessions.py         the session check, collecting a session, signing out
    attempt_waits.py    waiting for an attempt to move on (on ``waiting.py``)

Those modules read what they need, ask the pure domain what the change is, and write it with one
``Storage.apply`` (compare-and-set, all or nothing). Rejections are logged with their reason at
debug level (never a token); callers see only typed errors with stable codes.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import timedelta

import anyio
import anyio.abc
import anyio.lowlevel

from . import (
    attempt_waits,
    clients,
    email_codes,
    link_guard,
    links,
    sign_ins,
    sign_ups,
)
from .account import AccountMethods
from .attempt_waits import WaitMethods
from .budgets import budgeted, request_budget
from .clients import ClientState
from .context import Context
from .delivery import Delivery
from .domain import flows
from .domain.errors import InvalidRequestError
from .domain.models import (
    Attempt,
    AttemptKind,
    Client,
    EmailAddress,
    FirstFactor,
    RequestInfo,
    Session,
    SignIn,
    SignUp,
    Strategy,
)
from .domain.settings import Settings
from .emails import EmailRenderer
from .hooks import Hooks, VetoHook
from .links import LinkPreview, LinkResult
from .local_notifier import LocalNotifier
from .port_checks import check_adapters, check_storage
from .ports import Clock, HasNotifier, Mailer, Notifier, Storage, SystemClock

logger = logging.getLogger("magiclink")

MAX_WAIT = attempt_waits.MAX_WAIT


class MagicLinks(AccountMethods, WaitMethods):
    """Sign-up, sign-in and email verification by magic link, with sessions.

    :param settings: the app's :class:`Settings`.
    :param storage: a :class:`~magiclink_core.ports.Storage` adapter.
    :param mailer: a :class:`~magiclink_core.ports.Mailer` adapter.
    :param notifier: wakes waiters; defaults to the storage's own (PostgreSQL, Redis, a SQLite
        file) or an in-process one.
    :param clock: defaults to the system clock; tests pass a fake one.
    :param emails: an :class:`EmailRenderer`, to use your own templates.
    :raises TypeError: an adapter's method is sync where the service awaits it (a storage's
        port methods, ``mailer.send``, the notifier's), or async where it calls it
        (``emails.render``, ``clock.now``), or missing.
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
        check_storage(storage)  # before its notifier() is called
        if notifier is None:
            notifier = storage.notifier() if isinstance(storage, HasNotifier) else LocalNotifier()
        clock = clock or SystemClock()
        emails = emails or EmailRenderer()
        check_adapters(mailer=mailer, notifier=notifier, clock=clock, emails=emails)
        self._storage = storage
        self._ctx = Context(
            settings=settings,
            # every storage call of the service spends the request's storage_timeout budget
            storage=budgeted(storage, settings.storage_timeout),
            mailer=mailer,
            notifier=notifier,
            clock=clock,
            emails=emails,
            delivery=Delivery(
                mailer,
                clock,
                workers=settings.mail_workers,
                first_retry=settings.mail_first_retry,
                max_retry=settings.mail_max_retry,
                shutdown_grace=settings.mail_shutdown_grace,
            ),
        )
        self._entered = 0
        self._cache_group: anyio.abc.TaskGroup | None = None
        self.on = self._ctx.hooks.on
        """``links.on(event, hook)`` calls ``hook(AuthEvent)`` after ``event``;
        ``@links.on(event)`` does as a decorator (see :meth:`Hooks.on`)."""

    @property
    def settings(self) -> Settings:
        return self._ctx.settings

    @property
    def storage(self) -> Storage:
        """The storage adapter (called directly, it spends no request's budget)."""
        return self._storage

    def storage_budget(self) -> AbstractContextManager[object]:
        """Give the calls made inside the block one storage budget of
        ``settings.storage_timeout`` (a web layer enters it once per request): their storage
        time is summed, and past it each fails with :class:`StorageUnavailableError`. Calls made
        outside such a block get a budget each. Re-entering starts a new budget."""
        return request_budget(self.settings.storage_timeout)

    @property
    def mailer(self) -> Mailer:
        return self._ctx.mailer

    @property
    def notifier(self) -> Notifier:
        return self._ctx.notifier

    @property
    def clock(self) -> Clock:
        return self._ctx.clock

    @property
    def emails(self) -> EmailRenderer:
        return self._ctx.emails

    @property
    def hooks(self) -> Hooks:
        """The registered hooks (``on``, ``before_sign_up`` and ``before_sign_in`` add to them)."""
        return self._ctx.hooks

    async def mail_sent(self) -> None:
        """Return once no email is queued or being sent (emails go out off the request path
        while the instance runs; tests and a graceful shutdown wait here)."""
        await self._ctx.delivery.idle()

    async def aclose(self) -> None:
        """Release the notifier, the storage's connections and the mailer's (at shutdown)."""
        try:
            await self.notifier.close()
        finally:
            try:
                await self.storage.close()
            finally:
                close_mailer = getattr(self.mailer, "close", None)
                if close_mailer is not None:
                    await close_mailer()

    async def __aenter__(self) -> MagicLinks:
        """Start the shared notifier's listener (waiters are then woken by push across
        instances). Re-entrant: the middleware enters it in the ASGI lifespan, and an app may
        too; the outermost exit stops the listener and closes everything (:meth:`aclose`)."""
        if self._entered == 0:
            await self.notifier.__aenter__()
            try:
                await self._ctx.delivery.__aenter__()
                try:
                    await self._start_session_cache()
                except BaseException:
                    await self._ctx.delivery.__aexit__(None, None, None)
                    raise
            except BaseException:
                await self.notifier.__aexit__(None, None, None)
                raise
        self._entered += 1
        return self

    async def _start_session_cache(self) -> None:
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            await group.start(self._ctx.session_cache.run)
        except BaseException as exc:
            group.cancel_scope.cancel()
            await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._cache_group = group

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered -= 1
        if self._entered:
            return
        try:
            group, self._cache_group = self._cache_group, None
            if group is not None:  # the session cache stops serving before anything closes
                group.cancel_scope.cancel()
                await group.__aexit__(None, None, None)
        finally:
            await self._stop_delivery_and_close(*exc_info)

    async def _stop_delivery_and_close(self, *exc_info: object) -> None:
        try:
            await self._ctx.delivery.__aexit__(None, None, None)  # queued emails go out first
        finally:
            try:
                await self.notifier.__aexit__(*exc_info)
            finally:
                await self.aclose()

    # -- hooks -------------------------------------------------------------------------------

    def before_sign_up(self, hook: VetoHook) -> VetoHook:
        """Call ``hook(email)`` before a sign-up is created; ``False`` refuses it."""
        return self.hooks.before(AttemptKind.SIGN_UP, hook)

    def before_sign_in(self, hook: VetoHook) -> VetoHook:
        """Call ``hook(email)`` before a sign-in is created; ``False`` refuses it."""
        return self.hooks.before(AttemptKind.SIGN_IN, hook)

    # -- clients -----------------------------------------------------------------------------

    async def create_client(self) -> tuple[Client, str]:
        """A new client and its token (the plaintext goes only into the client's cookie)."""
        return await clients.create(self._ctx)

    async def get_client(self, token: str | None) -> Client | None:
        """The client a token belongs to, or None for a missing, malformed or unknown one."""
        return await clients.by_token(self._ctx, token)

    async def client_state(self, client: Client) -> ClientState:
        """The client's live sessions and its sign-in and sign-up in progress."""
        return await clients.state(self._ctx, client)

    # -- sign-ups ----------------------------------------------------------------------------

    async def create_sign_up(
        self, client: Client, email_address: object, *, request: RequestInfo | None = None
    ) -> SignUp:
        """Start a sign-up (status ``missing_requirements``); the client's previous sign-up, if
        still in progress, is abandoned and its link stops working. ``request`` is who asks:
        its client IP spends the ``attempts_per_ip`` budget.

        :raises RateLimitedError: too many sign-ups and sign-ins from the client IP.
        :raises InvalidEmailError: the address is not valid.
        :raises NotAllowedError: a ``before_sign_up`` hook refused.
        :raises IdentifierExistsError: the address has an account (only with enumeration
            protection off; with it on, the sign-up runs and its link signs the owner in).
        """
        return await sign_ups.create(self._ctx, client, email_address, request)

    async def prepare_sign_up_verification(
        self,
        client: Client,
        sign_up_id: str,
        *,
        redirect_url: str | None = None,
        request: RequestInfo | None = None,
        strategy: Strategy = "email_link",
    ) -> SignUp:
        """Email the sign-up's verification (a newer email replaces the older one's link and
        code): a link to ``redirect_url`` and a code, as ``Settings.email_verification`` says;
        ``strategy="email_code"`` sends a code only (no ``redirect_url`` needed).

        :raises NotFoundError: no such sign-up for this client.
        :raises InvalidStateError: the sign-up is no longer in progress.
        :raises InvalidRedirectError: ``redirect_url`` is not allowed.
        :raises RateLimitedError: too many links were sent to the address lately.
        :raises MailDeliveryError: the email could not be sent, or rendered (a template's
            mistake: ``permanent``, and nothing was written); the sign-up stays resendable.
        """
        return await sign_ups.prepare(
            self._ctx,
            client,
            sign_up_id,
            redirect_url=redirect_url,
            request=request,
            strategy=strategy,
        )

    # -- sign-ins ----------------------------------------------------------------------------

    async def create_sign_in(
        self, client: Client, identifier: object, *, request: RequestInfo | None = None
    ) -> SignIn:
        """Start a sign-in (status ``needs_first_factor``); the client's previous sign-in, if
        still in progress, is abandoned and its link stops working. ``request`` is who asks:
        its client IP spends the ``attempts_per_ip`` budget.

        With enumeration protection (the default) an address with no account gets a sign-in
        like any other; its email says there is no account instead of carrying a link. Its
        ``email_address_id`` is then a stable id keyed with the secret, for every address (the
        address's own record id only with protection off), so it tells nothing either, not even
        when the secret rotates.

        :raises RateLimitedError: too many sign-ups and sign-ins from the client IP.
        :raises InvalidEmailError: the identifier is not a valid email address.
        :raises NotAllowedError: a ``before_sign_in`` hook refused.
        :raises IdentifierNotFoundError: no account (only with enumeration protection off).
        """
        return await sign_ins.create(self._ctx, client, identifier, request)

    async def prepare_first_factor(
        self,
        client: Client,
        sign_in_id: str,
        *,
        email_address_id: str | None = None,
        redirect_url: str | None = None,
        request: RequestInfo | None = None,
        strategy: Strategy = "email_link",
    ) -> SignIn:
        """Email the sign-in's first factor (the guide's ``prepareFirstFactor``): a link and a
        code as for :meth:`prepare_sign_up_verification`.

        :raises NotFoundError: no such sign-in for this client.
        :raises InvalidRequestError: ``email_address_id`` is not one of the supported factors.
        :raises InvalidStateError: the sign-in is no longer in progress.
        :raises InvalidRedirectError, RateLimitedError, MailDeliveryError: as for sign-ups.
        """
        return await sign_ins.prepare_first_factor(
            self._ctx,
            client,
            sign_in_id,
            email_address_id=email_address_id,
            redirect_url=redirect_url,
            request=request,
            strategy=strategy,
        )

    # -- links -------------------------------------------------------------------------------

    async def inspect_link(self, token: str, client: Client | None) -> LinkPreview:
        """What a click on the link would do, changing nothing (safe for mail scanners).

        :raises MagicLinkError: the link would not work (``code`` expired, failed or
            client_mismatch); its ``redirect_url`` is set when ``client`` asked for the link.
        """
        return await link_guard.inspect(self._ctx, token, client)

    async def open_link(
        self,
        token: str,
        client: Client | None,
        *,
        request: RequestInfo | None = None,
        signed_in: Session | None = None,
    ) -> LinkPreview | LinkResult[Attempt]:
        """The emailed link opened (a GET of the landing): :meth:`inspect_link`, then
        :meth:`verify_link` when the opener may complete without confirming, on one read of
        the link and its attempt.

        Returns a :class:`LinkResult` when the link was consumed now (the client that asked
        for it opened it) or had been by this very client (``repeated``); else the
        :class:`LinkPreview` of a click still to be confirmed on purpose, and nothing is
        changed: a mail scanner's or another device's GET never completes, and under policy
        ``deny`` it does not record the mismatch either (only :meth:`verify_link` does).

        ``signed_in``: as in :meth:`verify_link`.

        :raises MagicLinkError: as :meth:`inspect_link`, and as :meth:`verify_link` for the
            click that completes.
        :raises ConflictError: lost too many races with concurrent clicks.
        """
        return await link_guard.open_link(
            self._ctx, token, client, request=request, signed_in=signed_in
        )

    async def verify_link(
        self,
        token: str,
        client: Client | None,
        *,
        confirmation_code: str | None = None,
        request: RequestInfo | None = None,
        signed_in: Session | None = None,
    ) -> LinkResult[Attempt]:
        """Consume a link: the one click that completes its attempt.

        A link used already by this very client is answered again (``repeated``): the starting
        client gets a fresh token for the session the link made, unless ``signed_in`` (the
        session the request's own cookie authenticated) is that session: its cookie works,
        so no token is made and nothing is written (a Back, a reload).

        :raises MagicLinkError: expired, used, unknown, tampered with, superseded, abandoned, or
            refused by the cross-device policy (``client_mismatch``).
        :raises ConfirmationCodeError: policy ``confirm``, another client, and a wrong code
            (some tries left; the last wrong one raises ``MagicLinkFailedError``).
        :raises InvalidStateError: policy ``confirm``, another client, and no code given.
        :raises ConflictError: lost too many races with concurrent clicks.
        :raises RateLimitedError: a code was given, it was to be compared, and the client IP's
            budget of wrong confirmation codes is spent (nothing is compared).
        """
        return await link_guard.verify(
            self._ctx,
            token,
            client,
            confirmation_code=confirmation_code,
            request=request,
            signed_in=signed_in,
        )

    async def resend_link(self, token: str, *, request: RequestInfo | None = None) -> AttemptKind:
        """Email a fresh link for the attempt an expired link belonged to (or a superseded one,
        once the newer link expired too), to the same address, for the same client and
        redirect. For the expired-link page's resend button: holding the old link proves
        nothing new and reveals nothing, since the new link goes to the same mailbox. A link
        that still works is never replaced this way (that would only kill the one in the
        inbox). The email names the device that asked for the first link; ``request`` is who
        asks now (its client IP spends the ``links_per_ip`` budget).

        :raises LinkStillWorksError: the link, or a newer one of its attempt (``newer``: such
            as the one a concurrent resend just sent), still works; nothing is sent or changed.
        :raises MagicLinkError: the link is unknown or used, its attempt is no longer in
            progress, or its verification failed (not by time).
        :raises RateLimitedError, MailDeliveryError: as when preparing.
        :raises ConflictError: lost too many races with concurrent changes.
        """
        return await links.resend(self._ctx, token, request=request)

    # -- email codes (typed on the device that asked) ------------------------------------------

    async def attempt_first_factor(
        self,
        client: Client,
        sign_in_id: str,
        *,
        code: str,
        strategy: Strategy = "email_code",
        request: RequestInfo | None = None,
    ) -> LinkResult[SignIn]:
        """Complete a sign-in with the code from its email (the guide's ``attemptFirstFactor``
        with ``email_code``), typed on the client that started it; the link dies with it.

        :raises NotFoundError: no such sign-in for this client.
        :raises InvalidRequestError: not a code, or a strategy other than ``email_code``.
        :raises EmailCodeError: a wrong code (some tries left).
        :raises MagicLinkError: expired, already used, or failed (the last allowed wrong code).
        :raises RateLimitedError: the address's or the IP address's budget of tries is spent.
        """
        if strategy != "email_code":
            raise InvalidRequestError(long_message="attempt_first_factor takes email_code.")
        return await email_codes.verify(
            self._ctx,
            lambda: self.get_sign_in(client, sign_in_id),
            client_id=client.id,
            code=code,
            request=request,
        )

    async def attempt_sign_up_verification(
        self, client: Client, sign_up_id: str, *, code: str, request: RequestInfo | None = None
    ) -> LinkResult[SignUp]:
        """Complete a sign-up with the code from its email (the guide's
        ``attemptEmailAddressVerification``). Raises as :meth:`attempt_first_factor`."""
        return await email_codes.verify(
            self._ctx,
            lambda: self.get_sign_up(client, sign_up_id),
            client_id=client.id,
            code=code,
            request=request,
        )

    async def attempt_email_verification(
        self,
        session: Session,
        email_address_id: str,
        *,
        code: str,
        request: RequestInfo | None = None,
    ) -> LinkResult[EmailAddress]:
        """Verify one of the user's addresses with the code from its email, typed on the client
        that asked for it. Raises as :meth:`attempt_first_factor`."""
        return await email_codes.verify(
            self._ctx,
            lambda: self.get_email_address(session, email_address_id),
            client_id=session.client_id,
            code=code,
            request=request,
        )

    def first_factors(self, sign_in: SignIn) -> tuple[FirstFactor, ...]:
        """The ways ``sign_in`` can be completed (the guide's ``supportedFirstFactors``)."""
        return flows.first_factors(
            sign_in, links=self.settings.sends_links, codes=self.settings.sends_codes
        )

    def check_redirect_url(self, url: str) -> str:
        """The absolute URL ``url`` names if redirecting there is allowed (a path on
        ``base_url``, or an allowlisted origin). :raises InvalidRedirectError:"""
        return self._ctx.check_redirect_url(url)

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


__all__ = ["MAX_WAIT", "ClientState", "Hooks", "LinkPreview", "LinkResult", "MagicLinks"]
