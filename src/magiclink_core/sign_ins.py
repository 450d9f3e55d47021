"""Sign-ins: start one for an address, email its link (the first factor), read it."""

from __future__ import annotations

from .clients import begin, vetted
from .context import Context
from .domain import flows
from .domain.errors import IdentifierNotFoundError, InvalidRequestError, InvalidStateError
from .domain.models import AttemptKind, Client, EmailAddress, RequestInfo, SignIn, Strategy
from .links import send


async def create(
    ctx: Context, client: Client, identifier: object, request: RequestInfo | None
) -> SignIn:
    """Start a sign-in; see :meth:`MagicLinks.create_sign_in`."""
    email = await vetted(ctx, AttemptKind.SIGN_IN, identifier, request)
    address = await ctx.storage.find(EmailAddress, "claimed_email", email)
    if address is None and not ctx.settings.enumeration_protection:
        raise IdentifierNotFoundError()
    # protected, every address's factor gets the keyed id, account or not: the same on every
    # request, so neither one answer nor two tell them apart, and moving alike when the secret
    # rotates (a record's own id would stay while an unknown address's moved)
    factor_id = (
        address.id
        if address is not None and not ctx.settings.enumeration_protection
        else ctx.keyring.pseudo_id(email)
    )
    return await begin(
        ctx,
        client,
        SignIn,
        email,
        user_id=address.user_id if address else None,
        email_address_id=factor_id,
    )


async def prepare_first_factor(
    ctx: Context,
    client: Client,
    sign_in_id: str,
    *,
    email_address_id: str | None,
    redirect_url: str | None,
    request: RequestInfo | None,
    strategy: Strategy,
) -> SignIn:
    """Email the sign-in's link; see :meth:`MagicLinks.prepare_first_factor`."""
    sign_in = await ctx.owned(SignIn, client.id, sign_in_id)
    if email_address_id is not None and email_address_id != sign_in.email_address_id:
        raise InvalidRequestError(long_message="email_address_id is not a factor of this sign-in.")
    if not flows.in_progress(sign_in):
        raise InvalidStateError(long_message="This sign-in is no longer in progress.")
    return await send(ctx, sign_in, redirect_url=redirect_url, request=request, strategy=strategy)
