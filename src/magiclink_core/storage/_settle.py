"""Seeing a write through: what the PostgreSQL and Redis adapters share about a write already
sent when their caller gives up.

Once a write is on the wire its outcome is the server's, so a caller that is cancelled (a client
that went away) still waits for the answer: the call returns with its outcome settled, as the
Storage port promises. A caller's *deadline* (the request's ``Settings.storage_timeout``) is
honoured too, with :data:`SETTLE_GRACE` seconds more for a write already sent (counted from
the cancellation, for a caller cancelled without a deadline): a server that
answers settles it well within that; one that does not answer leaves the outcome unknown, and
the call fails as unavailable (the write may still land later; the click rules allow for it).
"""

from __future__ import annotations

import math

import anyio

SETTLE_GRACE = 1.0
"""Seconds a write already sent may run past its caller's deadline to settle its outcome."""


def settling() -> anyio.CancelScope:
    """A scope shielding a write from its caller's cancellation, not from its deadline (plus
    :data:`SETTLE_GRACE`). Enter it where the write is sent; check :func:`timed_out` after."""
    # -inf when the caller is cancelled already: the grace then runs from now. Without a
    # deadline (inf) the clock is not read: each anyio call looks its event loop up again
    deadline = anyio.current_effective_deadline()
    if deadline != math.inf:
        deadline = max(deadline, anyio.current_time())
    return anyio.CancelScope(shield=True, deadline=deadline + SETTLE_GRACE)


def timed_out(scope: anyio.CancelScope) -> TimeoutError | None:
    """The error to raise (as unavailable) when ``scope`` ran out of time, else None."""
    if scope.cancelled_caught:
        return TimeoutError("no answer before the caller's deadline")
    return None
