"""Clients: the browsers or devices that start attempts and hold sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from . import throttle
from .context import RETRIES, Context
from .domain import flows, limits, session_rules
from .domain.errors import ConflictError, NotFoundError
from .domain.models import AttemptKind, Client, RequestInfo, Session, SignIn, SignUp
from .domain.quick_init import quick_init
from .domain.tokens import TokenPurpose, new_token_and_id
from .ports import Insert, Update

P = TypeVar("P", SignUp, SignIn)


@quick_init
@dataclass(frozen=True, slots=True)
class ClientState:
    """A client's view of itself (``GET /v1/client``)."""

    client: Client
    sessions: list[Session]
    sign_in: SignIn | None
    sign_up: SignUp | None


async def create(ctx: Context) -> tuple[Client, str]:
    """A new client and its token (the plaintext goes only into the client's cookie)."""
    now = ctx.now()
    token, client_id = new_token_and_id(TokenPurpose.CLIENT, Client.id_prefix)
    client = Client.new(
        now,
        id=client_id,
        token_digest=ctx.keyring.digest(token, TokenPurpose.CLIENT),
        last_active_at=now,
        purge_after=now + ctx.settings.client_ttl,
    )
    await ctx.storage.apply([Insert(client)])
    return client, token


async def by_token(ctx: Context, token: str | None) -> Client | None:
    """The client a token belongs to, or None for a missing, malformed or unknown one."""
    if not token:
        return None
    for digest in ctx.keyring.candidate_digests(token, TokenPurpose.CLIENT):
        client = await ctx.storage.find(Client, "token_digest", digest)
        if client is not None:
            return client
    return None


async def state(ctx: Context, client: Client) -> ClientState:
    """The client's live sessions and its sign-in and sign-up in progress."""
    client = await ctx.storage.get(Client, client.id) or client  # its newest attempts
    now = ctx.now()
    sessions = [
        s
        for s in await ctx.storage.list(Session, "client_id", client.id)
        if s.token_digest is not None
        and session_rules.session_expiry_reason(s, now, ctx.settings.session_idle_timeout) is None
    ]
    sign_in = await _current(ctx, SignIn, client.sign_in_id, client)
    sign_up = await _current(ctx, SignUp, client.sign_up_id, client)
    return ClientState(client, sessions, sign_in, sign_up)


async def _current(ctx: Context, kind: type[P], attempt_id: str | None, client: Client) -> P | None:
    if attempt_id is None:
        return None
    record = await ctx.storage.get(kind, attempt_id)
    if record is None or record.client_id != client.id:
        return None
    return flows.attempt_as_of(record, ctx.now())


async def vetted(
    ctx: Context, kind: AttemptKind, raw_email: object, request: RequestInfo | None
) -> str:
    """The canonical address a sign-up or sign-in is for, once the client IP's budget of
    attempts (every try counts) and the app's vetoes let it.

    :raises RateLimitedError: too many attempts from the client IP.
    :raises InvalidEmailError: not a valid address. :raises NotAllowedError: a veto refused.
    """
    ip_address = request.ip_address if request is not None else ""
    await throttle.take(ctx, limits.attempts(ctx.settings, ip_address), ip_address=ip_address)
    email = await ctx.email(raw_email)
    await ctx.hooks.check(kind, email, ip_address=ip_address)
    return email


async def begin(ctx: Context, client: Client, kind: type[P], email: str, **fields: object) -> P:
    """A new sign-up or sign-in of ``client`` for ``email``, stored as its current one."""
    attempt = flows.new_attempt(
        kind,
        client,
        email,
        ctx.now(),
        ttl=ctx.settings.attempt_ttl,
        purge_grace=ctx.settings.purge_grace,
        **fields,
    )
    await start_attempt(ctx, client, attempt)
    return attempt


async def start_attempt(ctx: Context, client: Client, attempt: SignUp | SignIn) -> None:
    """Store ``attempt`` as the client's current one of its kind, abandoning the one it
    replaces (whose link then stops working), in one atomic write.

    :raises NotFoundError: the client is gone. :raises ConflictError: too many lost races.
    """
    current = client
    for _ in range(RETRIES):
        previous = await _current_of(ctx, current, type(attempt))
        other = await _current_of(ctx, current, SignIn if isinstance(attempt, SignUp) else SignUp)
        changes = flows.start_attempt(
            current,
            attempt,
            previous,
            now=ctx.now(),
            client_ttl=ctx.settings.client_ttl,
            other=other,
        )
        if await ctx.try_write(changes):
            abandoned = {c.record.id for c in changes[2:] if isinstance(c, Update)}
            for replaced in (previous, other):
                if replaced is not None and replaced.id in abandoned:
                    await ctx.publish(flows.kind_of(replaced), replaced.id)
            return
        fresh = await ctx.storage.get(Client, client.id)
        if fresh is None:
            raise NotFoundError(long_message="This client no longer exists.")
        current = fresh
    raise ConflictError()


async def _current_of(
    ctx: Context, client: Client, kind: type[SignUp] | type[SignIn]
) -> SignUp | SignIn | None:
    attempt_id = client.sign_up_id if kind is SignUp else client.sign_in_id
    return await ctx.storage.get(kind, attempt_id) if attempt_id else None
