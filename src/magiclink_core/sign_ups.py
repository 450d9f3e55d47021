"""Sign-ups: start one for an address, email its link, read it."""

from __future__ import annotations

from .clients import begin, vetted
from .context import Context
from .domain import flows
from .domain.errors import IdentifierExistsError, InvalidStateError
from .domain.models import AttemptKind, Client, EmailAddress, RequestInfo, SignUp, Strategy
from .links import send


async def create(
    ctx: Context, client: Client, email_address: object, request: RequestInfo | None
) -> SignUp:
    """Start a sign-up; see :meth:`MagicLinks.create_sign_up`."""
    email = await vetted(ctx, AttemptKind.SIGN_UP, email_address, request)
    if not ctx.settings.enumeration_protection and (
        await ctx.storage.find(EmailAddress, "claimed_email", email) is not None
    ):
        raise IdentifierExistsError()
    return await begin(ctx, client, SignUp, email)


async def prepare(
    ctx: Context,
    client: Client,
    sign_up_id: str,
    *,
    redirect_url: str | None,
    request: RequestInfo | None,
    strategy: Strategy,
) -> SignUp:
    """Email the sign-up's link; see :meth:`MagicLinks.prepare_sign_up_verification`."""
    sign_up = await ctx.owned(SignUp, client.id, sign_up_id)
    if not flows.in_progress(sign_up):
        raise InvalidStateError(long_message="This sign-up is no longer in progress.")
    return await send(ctx, sign_up, redirect_url=redirect_url, request=request, strategy=strategy)
