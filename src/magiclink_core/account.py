"""The methods of :class:`~magiclink_core.MagicLinks` for a signed-in user's account: its
email addresses and its sessions. A mixin of the facade, so the facade stays one class to import
and each part of it one file to read."""

from __future__ import annotations

from . import email_addresses, sessions
from .context import Context
from .domain.errors import UnauthenticatedError
from .domain.models import (
    Client,
    EmailAddress,
    RequestInfo,
    Session,
    SessionStatus,
    Strategy,
    User,
)


class AccountMethods:
    """A signed-in user's email addresses and sessions (mixed into ``MagicLinks``)."""

    _ctx: Context

    # -- a signed-in user's email addresses --------------------------------------------------

    async def add_email_address(
        self, session: Session, email_address: object, *, request: RequestInfo | None = None
    ) -> EmailAddress:
        """Add an unverified address to the session's user. An account change: it needs a
        recent sign-in, and the user's other verified addresses are told by email (naming the
        device ``request`` describes).

        :raises ReverificationRequiredError: the session is older than
            ``Settings.reverification_window`` (sign in again, then retry).
        :raises InvalidEmailError: not a valid address.
        :raises IdentifierExistsError: the user has this address already.
        """
        return await email_addresses.add(self._ctx, session, email_address, request)

    async def prepare_email_verification(
        self,
        session: Session,
        email_address_id: str,
        *,
        redirect_url: str | None = None,
        request: RequestInfo | None = None,
        strategy: Strategy = "email_link",
    ) -> EmailAddress:
        """Email a link and a code that verify one of the user's addresses (as for
        :meth:`prepare_sign_up_verification`).

        :raises NotFoundError: not an address of this user.
        :raises InvalidStateError: the address is verified already.
        :raises InvalidRedirectError, RateLimitedError, MailDeliveryError: as for sign-ups.
        """
        return await email_addresses.prepare(
            self._ctx,
            session,
            email_address_id,
            redirect_url=redirect_url,
            request=request,
            strategy=strategy,
        )

    async def list_email_addresses(self, user_id: str) -> list[EmailAddress]:
        """The user's addresses, oldest first."""
        return await email_addresses.list_of(self._ctx, user_id)

    async def set_primary_email_address(
        self, session: Session, email_address_id: str, *, request: RequestInfo | None = None
    ) -> User:
        """Make a verified address the primary one; an account change, as
        :meth:`add_email_address` (the replaced primary's pending link, if any, dies).

        :raises ReverificationRequiredError: the session is not recent.
        :raises NotFoundError: not an address of this user.
        :raises InvalidStateError: the address is not verified."""
        return await email_addresses.set_primary(self._ctx, session, email_address_id, request)

    async def remove_email_address(
        self, session: Session, email_address_id: str, *, request: RequestInfo | None = None
    ) -> None:
        """Remove an address and its pending verification link; an account change, as
        :meth:`add_email_address`. Sessions stay (see :meth:`revoke_sessions`).

        :raises ReverificationRequiredError: the session is not recent.
        :raises NotFoundError: not an address of this user.
        :raises InvalidStateError: it is the primary address (make another primary first)."""
        await email_addresses.remove(self._ctx, session, email_address_id, request)

    async def get_user(self, user_id: str) -> User:
        """:raises NotFoundError: no such user."""
        return await email_addresses.get_user(self._ctx, user_id)

    async def primary_email(self, user: User) -> str | None:
        """The user's primary address, or None."""
        return await email_addresses.primary_email(self._ctx, user)

    # -- sessions ----------------------------------------------------------------------------

    async def authenticate(self, session_token: str | None) -> Session | None:
        """The live session a session token belongs to, or None. The hot path: one keyed digest
        and one storage read, or none while the session cache holds it (see
        ``session_cache.py``); the idle-timeout touch writes at most once per touch interval."""
        return await sessions.authenticate(self._ctx, session_token)

    async def require_session(self, session_token: str | None) -> Session:
        """:raises UnauthenticatedError: no live session for the token."""
        session = await self.authenticate(session_token)
        if session is None:
            raise UnauthenticatedError()
        return session

    async def activate_session(self, client: Client, session_id: str) -> tuple[Session, str]:
        """Make one of the client's sessions the active one and issue its token (the guide's
        ``setSession``). This is how a client collects a session completed on another device.
        The token is fresh each time; the client's other sessions end.

        :raises NotFoundError: not a live session of this client.
        """
        return await sessions.activate(self._ctx, client, session_id)

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
        return await sessions.end(
            self._ctx, session_id, client=client, user_id=user_id, status=status
        )

    async def list_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions, oldest first."""
        return await sessions.list_of(self._ctx, user_id)

    async def revoke_sessions(self, user_id: str) -> int:
        """End every live session of a user (say, after an account compromise); returns how many."""
        return await sessions.revoke_all(self._ctx, user_id)
