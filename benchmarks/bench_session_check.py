"""The session check alone (``MagicLinks.authenticate``), against a floor and a peer.

- floor: what any server-side session check must do at least: one HMAC-SHA256 of the cookie and
  one dict lookup (no parsing, no expiry rule, no model);
- peer: itsdangerous's ``TimestampSigner.unsign`` (what Starlette's SessionMiddleware does per
  request: a stateless signed cookie, which cannot be revoked singly);
- magiclink with ``MagicLinks`` running: served from the session cache (one keyed digest, one
  dict lookup, the expiry rule as of now); beside it the storage reads the cached checks made;
- magiclink with the cache off: the token parsed, digested and looked up in storage.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from magiclink_core import Session

from ._harness import Section, ratio, side_by_side, us
from ._stores import Unavailable, magiclinks, open_store
from .bench_middleware import signed_in


class Reads:
    """Counts the storage reads of one adapter (by wrapping its methods in place)."""

    def __init__(self, storage: Any) -> None:
        self.count = 0
        for name in ("get", "find", "list"):
            real = getattr(storage, name)
            setattr(storage, name, self._counted(real))

    def _counted(self, real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any) -> Any:
            self.count += 1
            return await real(*args)

        return counted


async def run(quick: bool) -> Section:
    section = Section("The session check alone (target 2, in the core)")
    n, rounds = (500, 2) if quick else (20_000, 9)
    variants: dict[str, Callable[[], Awaitable[object]]] = {}
    reads: dict[str, Reads] = {}
    async with AsyncExitStack() as stack:
        for store, cache in (
            ("memory", True),
            ("memory", False),
            ("sqlite", True),
            ("sqlite", False),
        ):
            try:
                storage = await stack.enter_async_context(open_store(store))
            except Unavailable as exc:
                section.note(f"{store}: skipped ({exc})")
                continue
            links, mailer = magiclinks(
                storage, **({} if cache else {"session_cache_ttl": timedelta(0)})
            )
            await stack.enter_async_context(links)
            token = await signed_in(links, mailer, f"check-{store}@example.org")
            name = f"{store}{'' if cache else ' uncached'}"
            reads[name] = Reads(storage)
            variants[name] = _check(links.authenticate, token)
        key = b"k" * 32
        table = {hmac.new(key, token.encode(), hashlib.sha256).hexdigest(): object()}

        async def floor() -> object:
            return table.get(hmac.new(key, token.encode(), hashlib.sha256).hexdigest())

        variants["floor"] = floor
        try:
            from itsdangerous import TimestampSigner

            signer = TimestampSigner("bench-secret")
            cookie = signer.sign(b"eyJ1IjogIjEyMyJ9")

            async def peer() -> object:
                return signer.unsign(cookie, max_age=3600)

            variants["peer"] = peer
        except ImportError:
            section.note("itsdangerous is not installed: the peer row is left out")
        before = {name: r.count for name, r in reads.items()}
        times = await side_by_side(variants, n=n, rounds=rounds)
        calls = n * rounds
        made = {name: r.count - before[name] for name, r in reads.items()}
    base = times["floor"]
    section.add("floor: one HMAC-SHA256 + a dict lookup", us(base), "", "1.00× floor")
    peer_time = times.get("peer")
    if peer_time is not None:
        section.add(
            "itsdangerous TimestampSigner.unsign (SessionMiddleware's check)",
            us(peer_time),
            "floor",
            ratio(peer_time, base),
        )
    for name in ("memory", "sqlite", "memory uncached", "sqlite uncached"):
        if name not in times:
            continue
        cached = "uncached" not in name
        what = f"magiclink authenticate, {name.split()[0]}, " + (
            "session cache" if cached else "cache off (a storage read)"
        )
        section.add(
            what,
            us(times[name]),
            "floor" if peer_time is None else f"itsdangerous {us(peer_time)}",
            ratio(times[name], peer_time or base, line=1 if cached and peer_time else None),
            "≤ 1.00× peer" if cached and peer_time else "",
            times[name] <= peer_time if cached and peer_time else None,
        )
        section.add(f"  storage reads in {calls:,} checks ({name})", f"{made[name]:,}")
    return section


def _check(
    authenticate: Callable[[str], Awaitable[Session | None]], token: str
) -> Callable[[], Awaitable[object]]:
    async def check() -> object:
        session = await authenticate(token)
        if session is None:
            raise RuntimeError("the session stopped working")
        return session

    return check
