"""How a :class:`~magiclink_core.storage.PostgresStorage` hands its connections back to
asyncpg's pool and keeps them between calls: the release done in the caller's task, the pool's
reset that sends nothing, a rollback that terminates what cannot roll back, and whether a kept
connection still serves."""

from __future__ import annotations

import contextlib

import anyio

from ._asyncpg import PgConnection, PgPool, PgTransaction, asyncpg


def usable(connection: PgConnection) -> bool:
    """Whether a kept connection can serve a call. One the server dropped while it was kept
    (a restart, ``pg_terminate_backend``, an idle-session timeout) is closed, or already handed
    back to the pool by asyncpg, which then refuses every call on it, ``is_closed`` included."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


async def release(pool: PgPool, connection: PgConnection, timeout: float) -> None:
    """Give ``connection`` back to ``pool``, as ``Pool.release`` does but in this task: asyncpg
    shields the release in a task of its own (three more trips through the event loop on every
    storage call, which made a one-statement consume cost 2.5 trips' worth more than the same
    statement on a connection of one's own). Shielded here instead, bounded by ``timeout`` (the
    release rolls back a transaction left open); a pool or connection without the holder this
    relies on (another asyncpg, a wrapper) is released the documented way."""
    holder = getattr(connection, "_holder", None)
    inner = getattr(connection, "_con", None)
    if (
        holder is None
        or inner is None
        or getattr(holder, "_pool", None) is not pool
        or not hasattr(inner, "_on_release")
    ):
        await pool.release(connection)
        return
    with anyio.CancelScope(shield=True):
        inner._on_release()
        await holder.release(timeout)


async def keep_session(connection: PgConnection) -> None:
    """The pool's reset on release: nothing. asyncpg's default sends ``RESET ALL; UNLISTEN *;
    ...`` each time, one more round trip per storage call; this storage changes no session state
    (its settings are fixed at connect, its advisory locks are transaction-scoped, it never
    listens on a pooled connection), and asyncpg still rolls back a transaction left open."""


async def rollback(connection: PgConnection, transaction: PgTransaction) -> None:
    """Roll back; a connection that cannot (it broke, or a cancelled statement left it busy) is
    terminated instead, which makes the server roll back and the pool replace it."""
    try:
        await transaction.rollback()
    except Exception:
        if not connection.is_closed():
            with contextlib.suppress(Exception):
                connection.terminate()


__all__ = ["keep_session", "release", "rollback", "usable"]
