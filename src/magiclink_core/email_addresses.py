"""A signed-in user's email addresses: add, verify by link, make primary, remove."""

from __future__ import annotations

from .context import RETRIES, Context
from .domain import flows
from .domain.errors import ConflictError, IdentifierExistsError, InvalidStateError, NotFoundError
from .domain.models import EmailAddress, RequestInfo, Session, SessionStatus, Strategy, User
from .links import send
from .ports import Change, Delete, Insert, Update, WriteConflict


async def get_user(ctx: Context, user_id: str) -> User:
    """:raises NotFoundError: no such user."""
    user = await ctx.storage.get(User, user_id)
    if user is None:
        raise NotFoundError(long_message="No such user.")
    return user


async def add(ctx: Context, session: Session, email_address: object) -> EmailAddress:
    """Add an unverified address; see :meth:`MagicLinks.add_email_address`."""
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
    return address


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


async def set_primary(ctx: Context, session: Session, email_address_id: str) -> User:
    """Make a verified address the user's primary one. :raises InvalidStateError: unverified."""
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
        if await ctx.try_write(changes):
            return updated
        user = await get_user(ctx, session.user_id)
    raise ConflictError()


async def remove(ctx: Context, session: Session, email_address_id: str) -> None:
    """Remove an address. :raises InvalidStateError: it is the primary one."""
    address = await get(ctx, session, email_address_id)
    user = await get_user(ctx, session.user_id)
    if user.primary_email_address_id == address.id:
        raise InvalidStateError(
            long_message="This is your primary address: make another one primary first."
        )
    await ctx.write([Delete(EmailAddress, address.id, address.version)])


async def primary_email(ctx: Context, user: User) -> str | None:
    """The user's primary address, or None."""
    if user.primary_email_address_id is None:
        return None
    address = await ctx.storage.get(EmailAddress, user.primary_email_address_id)
    return address.email if address else None
