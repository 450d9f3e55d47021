"""Sign-ups: start one for an address, email its link, read it."""

from __future__ import annotations

from .clients import start_attempt
from .context import Context
from .domain import flows
from .domain.errors import IdentifierExistsError, InvalidStateError
from .domain.models import AttemptKind, Client, EmailAddress, RequestInfo, SignUp
from .domain.tokens import new_id
from .links import send


async def create(ctx: Context, client: Client, email_address: object) -> SignUp:
    """Start a sign-up; see :meth:`MagicLinks.create_sign_up`."""
    email = await ctx.email(email_address)
    await ctx.hooks.check(AttemptKind.SIGN_UP, email)
    if not ctx.settings.enumeration_protection and (
        await ctx.storage.find(EmailAddress, "claimed_email", email) is not None
    ):
        raise IdentifierExistsError()
    now = ctx.now()
    sign_up = SignUp(
        id=new_id(SignUp.id_prefix),
        client_id=client.id,
        email_address=email,
        created_at=now,
        updated_at=now,
        abandon_at=now + ctx.settings.attempt_ttl,
        purge_after=now + ctx.settings.attempt_ttl + ctx.settings.purge_grace,
    )
    await start_attempt(ctx, client, sign_up)
    return sign_up


async def get(ctx: Context, client: Client, sign_up_id: str) -> SignUp:
    """The client's sign-up, as of now. :raises NotFoundError:"""
    return await ctx.owned(SignUp, client.id, sign_up_id)


async def prepare(
    ctx: Context,
    client: Client,
    sign_up_id: str,
    *,
    redirect_url: str,
    request: RequestInfo | None,
) -> SignUp:
    """Email the sign-up's link; see :meth:`MagicLinks.prepare_sign_up_verification`."""
    sign_up = await get(ctx, client, sign_up_id)
    if not flows.in_progress(sign_up):
        raise InvalidStateError(long_message="This sign-up is no longer in progress.")
    return await send(ctx, sign_up, redirect_url=redirect_url, request=request)
