"""A signed-in user's email addresses: add, verify by link, make primary, remove.

Adding, removing and making primary are account changes (``domain/account_changes.py``): each
needs a recent sign-in, tells the user's other verified addresses by email, and is an event.
"""

from __future__ import annotations

from .context import RETRIES, Context
from .domain import account_changes, flows
from .domain.errors import (
    ConflictError,
    IdentifierExistsError,
    InvalidStateError,
    NotFoundError,
    ReverificationRequiredError,
)
from .domain.events import AuthEvent, Event
from .domain.models import (
    AttemptKind,
    EmailAddress,
    Link,
    RequestInfo,
    Session,
    SessionStatus,
    Strategy,
    User,
)
from .links import send
from .notices import notify
from .ports import Change, Delete, Insert, Update, WriteConflict


async def get_user(ctx: Context, user_id: str) -> User:
    """:raises NotFoundError: no such user."""
    user = await ctx.storage.get(User, user_id) if isinstance(user_id, str) else None
    if user is None:
        raise NotFoundError(long_message="No such user.")
    return user


async def add(
    ctx: Context, session: Session, email_address: object, request: RequestInfo | None
) -> EmailAddress:
    """Add an unverified address; see :meth:`MagicLinks.add_email_address`."""
    await _recent(ctx, session, "add_email_address", request)
    email = await ctx.email(email_address)
    for existing in await ctx.storage.list(EmailAddress, "user_id", session.user_id):
        if existing.email == email:
            raise IdentifierExistsError(long_message="You have added this address already.")
    now = ctx.now()
    address = EmailAddress.new(
        now, user_id=session.user_id, email=email, client_id=session.client_id
    )
    try:  # the storage holds one per user, however fast "Add" is clicked twice
        await ctx.storage.apply([Insert(address)])
    except WriteConflict as exc:
        raise IdentifierExistsError(long_message="You have added this address already.") from exc
    await _changed(ctx, Event.EMAIL_ADDRESS_ADDED, session, address, request)
    return address


async def _recent(ctx: Context, session: Session, change: str, request: RequestInfo | None) -> None:
    """:raises ReverificationRequiredError: the session is too old for an account change."""
    window = ctx.settings.reverification_window
    if window is None or not account_changes.reverification_needed(session, ctx.now(), window):
        return
    await ctx.hooks.emit(
        AuthEvent(
            Event.REVERIFICATION_REQUIRED,
            user_id=session.user_id,
            session_id=session.id,
            client_id=session.client_id,
            reason=change,
            ip_address=(request.ip_address or None) if request is not None else None,
        )
    )
    raise ReverificationRequiredError(window)


async def _changed(
    ctx: Context,
    kind: Event,
    session: Session,
    address: EmailAddress,
    request: RequestInfo | None,
) -> None:
    """Announce an account change: the event, and an email to every other verified address."""
    event = AuthEvent(
        kind,
        user_id=session.user_id,
        session_id=session.id,
        client_id=session.client_id,
        email_address=address.email,
        attempt_id=address.id,
        ip_address=(request.ip_address or None) if request is not None else None,
    )
    await ctx.hooks.emit(event)
    addresses = await ctx.storage.list(EmailAddress, "user_id", session.user_id)
    recipients = account_changes.to_notify(addresses, address)
    await notify(ctx, recipients, event, about=address.email, request=request)


async def _pending_link(ctx: Context, address: EmailAddress) -> list[Change]:
    """The change that kills the address's pending verification link, if it has one."""
    link_id = account_changes.pending_link_of(address)
    link = await ctx.storage.get(Link, link_id) if link_id is not None else None
    return account_changes.withdraw(link)


async def get(ctx: Context, session: Session, email_address_id: str) -> EmailAddress:
    """One of the session's user's addresses, as of now. :raises NotFoundError:"""
    return await ctx.owned(EmailAddress, session.user_id, email_address_id)


async def list_of(ctx: Context, user_id: str) -> list[EmailAddress]:
    """The user's addresses, oldest first, as of now."""
    now = ctx.now()
    return [
        flows.attempt_as_of(a, now)
        for a in await ctx.storage.list(EmailAddress, "user_id", user_id)
    ]


async def prepare(
    ctx: Context,
    session: Session,
    email_address_id: str,
    *,
    redirect_url: str | None,
    request: RequestInfo | None,
    strategy: Strategy,
) -> EmailAddress:
    """Email the address's verification link; see :meth:`MagicLinks.prepare_email_verification`."""
    address = await get(ctx, session, email_address_id)
    if not flows.in_progress(address):
        raise InvalidStateError(long_message="This address is verified already.")
    if address.client_id != session.client_id:  # the asking client owns the wait and the link
        address = address.bumped(ctx.now(), client_id=session.client_id)
        await ctx.write([Update(address)])
    return await send(ctx, address, redirect_url=redirect_url, request=request, strategy=strategy)


async def set_primary(
    ctx: Context, session: Session, email_address_id: str, request: RequestInfo | None
) -> User:
    """Make a verified address the user's primary one. :raises InvalidStateError: unverified.
    :raises ReverificationRequiredError: the session is not recent."""
    await _recent(ctx, session, "set_primary_email_address", request)
    address = await get(ctx, session, email_address_id)
    if not address.verified:
        raise InvalidStateError(long_message="Verify this address before making it primary.")
    user = await get_user(ctx, session.user_id)
    if user.primary_email_address_id == address.id:
        return user
    for _ in range(RETRIES):
        now = ctx.now()
        updated = user.bumped(now, primary_email_address_id=address.id)
        # the user's sessions carry the primary address (who is signed in, without a read)
        sessions = await ctx.storage.list(Session, "user_id", user.id)
        changes: list[Change] = [Update(updated)]
        changes += [
            Update(s.bumped(now, email_address=address.email))
            for s in sessions
            if s.status is SessionStatus.ACTIVE and s.email_address != address.email
        ]
        replaced = None
        if user.primary_email_address_id is not None:
            replaced = await ctx.storage.get(EmailAddress, user.primary_email_address_id)
        if replaced is not None:  # the replaced primary's pending link dies with the change
            changes += await _pending_link(ctx, replaced)
        if await ctx.try_write(changes):
            await _changed(ctx, Event.PRIMARY_EMAIL_ADDRESS_CHANGED, session, address, request)
            return updated
        user = await get_user(ctx, session.user_id)
    raise ConflictError()


async def remove(
    ctx: Context, session: Session, email_address_id: str, request: RequestInfo | None
) -> None:
    """Remove an address and its pending link. :raises InvalidStateError: it is the primary
    one. :raises ReverificationRequiredError: the session is not recent."""
    await _recent(ctx, session, "remove_email_address", request)
    for _ in range(RETRIES):
        address = await get(ctx, session, email_address_id)
        user = await get_user(ctx, session.user_id)
        if user.primary_email_address_id == address.id:
            raise InvalidStateError(
                long_message="This is your primary address: make another one primary first."
            )
        changes: list[Change] = [
            *await _pending_link(ctx, address),
            Delete(EmailAddress, address.id, address.version),
        ]
        if await ctx.try_write(changes):
            # a page waiting on its verification (this tab or another) hears it is gone now,
            # not at its wait's timeout
            await ctx.publish(AttemptKind.EMAIL_ADDRESS, address.id)
            await _changed(ctx, Event.EMAIL_ADDRESS_REMOVED, session, address, request)
            return
    raise ConflictError()


async def primary_email(ctx: Context, user: User) -> str | None:
    """The user's primary address, or None."""
    if user.primary_email_address_id is None:
        return None
    address = await ctx.storage.get(EmailAddress, user.primary_email_address_id)
    return address.email if address else None
