"""Sessions: the hot-path check of a session token, collecting a session, signing out."""

from __future__ import annotations

from .context import RETRIES, Context
from .domain import session_rules
from .domain.errors import ConflictError, NotFoundError
from .domain.events import AuthEvent, Event
from .domain.models import Client, Session, SessionStatus
from .domain.tokens import SESSION, new_token
from .ports import Change, Update


async def authenticate(ctx: Context, session_token: str | None) -> Session | None:
    """The live session of a token, or None; see :meth:`MagicLinks.authenticate`.

    Served from the session cache when it holds the token's session (no storage read); else
    read from storage, and kept in the cache when live and not due for its touch.
    """
    if not session_token:
        return None
    now = ctx.now()
    terms = ctx.session_terms
    cache = ctx.session_cache
    key = None
    if cache.enabled and cache.serving:
        # keyed by the digest under the newest key, whichever key's digest storage holds
        key = ctx.keyring.digest(session_token, SESSION)
        cached = cache.get(key, now)
        if cached is not None and not session_rules.needs_touch(cached, now, terms.touch_interval):
            return (
                cached
                if session_rules.session_expiry_reason(cached, now, terms.idle_timeout) is None
                else None
            )
    epoch = cache.epoch
    session = None
    for digest in ctx.keyring.candidate_digests(session_token, SESSION):
        session = await ctx.storage.find(Session, "token_digest", digest)
        if session is not None:
            break
    if session is None:
        return await _by_previous_token(ctx, session_token)
    if session_rules.session_expiry_reason(session, now, terms.idle_timeout) is not None:
        return None
    if session_rules.needs_touch(session, now, terms.touch_interval):
        touched = session.bumped(now, last_active_at=now)
        if await ctx.try_write([Update(touched)]):
            return touched
        return session
    if key is not None:
        cache.put(key, session, now, epoch)
    return session


async def _by_previous_token(ctx: Context, session_token: str) -> Session | None:
    """The live session whose replaced token this is, while that token still works; the token
    is made the session's own again (the client kept it), so it keeps working after the grace.
    Never cached: this is the rare path of a double tap whose answers crossed."""
    digests = ctx.keyring.candidate_digests(session_token, SESSION)
    session: Session | None = None
    for _ in range(RETRIES):
        for digest in digests:
            session = await ctx.storage.find(Session, "previous_token_digest", digest)
            if session is not None:
                break
        else:
            # made current again by a request that raced this one, or never a token at all
            for digest in digests:
                session = await ctx.storage.find(Session, "token_digest", digest)
                if session is not None:
                    return session if _live(ctx, session) else None
            return None
        now = ctx.now()
        if not (session_rules.previous_token_live(session, now) and _live(ctx, session)):
            return None
        readopted = session_rules.readopt_previous(session, now, ctx.session_terms.token_grace)
        if await ctx.try_write([Update(readopted)]):
            return readopted
    return session  # live when read: a session written this busily is not worth refusing


def _live(ctx: Context, session: Session | None) -> bool:
    return (
        session is not None
        and session_rules.session_expiry_reason(session, ctx.now(), ctx.session_terms.idle_timeout)
        is None
    )


async def activate(ctx: Context, client: Client, session_id: str) -> tuple[Session, str]:
    """Issue a fresh token for one of the client's sessions and end its others; see
    :meth:`MagicLinks.activate_session`."""
    if not isinstance(session_id, str):
        raise NotFoundError(long_message="No such session.")
    for _ in range(RETRIES):
        now = ctx.now()
        session = await ctx.storage.get(Session, session_id)
        if session is None or session.client_id != client.id or not _live(ctx, session):
            raise NotFoundError(long_message="No such session.")
        token = new_token(SESSION)
        activated = session_rules.with_new_token(
            session,
            ctx.keyring.digest(token, SESSION),
            now,
            ctx.session_terms.token_grace,
        )
        others = [
            s
            for s in await ctx.storage.list(Session, "client_id", client.id)
            if s.id != session.id and s.status is SessionStatus.ACTIVE
        ]
        changes: list[Change] = [Update(activated)]
        changes += [
            Update(session_rules.end_session(s, now, SessionStatus.ENDED, ctx.settings.purge_grace))
            for s in others
        ]
        if await ctx.try_write(changes):
            await ctx.hooks.emit(*[_ended(s) for s in others])
            return activated, token
    raise ConflictError()


def _ended(session: Session) -> AuthEvent:
    return AuthEvent(
        Event.SESSION_ENDED,
        user_id=session.user_id,
        session_id=session.id,
        client_id=session.client_id,
    )


async def end(
    ctx: Context,
    session_id: str,
    *,
    client: Client | None,
    user_id: str | None,
    status: SessionStatus,
) -> Session:
    """Sign a session out; see :meth:`MagicLinks.end_session`."""
    if not isinstance(session_id, str):
        raise NotFoundError(long_message="No such session.")
    for _ in range(RETRIES):
        session = await ctx.storage.get(Session, session_id)
        if session is None or not (
            (client is not None and session.client_id == client.id)
            or (user_id is not None and session.user_id == user_id)
        ):
            raise NotFoundError(long_message="No such session.")
        if session.status is not SessionStatus.ACTIVE:
            return session
        ended = session_rules.end_session(session, ctx.now(), status, ctx.settings.purge_grace)
        if await ctx.try_write([Update(ended)]):
            await ctx.hooks.emit(_ended(session))
            return ended
    raise ConflictError()


async def list_of(ctx: Context, user_id: str) -> list[Session]:
    """The user's live sessions, oldest first (none for what is not a user id at all)."""
    if not isinstance(user_id, str):
        return []
    return [s for s in await ctx.storage.list(Session, "user_id", user_id) if _live(ctx, s)]


async def revoke_all(ctx: Context, user_id: str) -> int:
    """End every live session of a user; returns how many."""
    ended = 0
    for session in await list_of(ctx, user_id):
        result = await end(
            ctx, session.id, client=None, user_id=user_id, status=SessionStatus.REVOKED
        )
        ended += result.status is SessionStatus.REVOKED
    return ended
