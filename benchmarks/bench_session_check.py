"""The hot path: checking a session cookie on a request, against a floor and a peer.

- floor: what any server-side session check must do at least: one HMAC-SHA256 of the cookie and
  one dict lookup (no parsing, no expiry rule, no model);
- peer: itsdangerous's TimestampSigner.unsign (what Starlette's SessionMiddleware does per request:
  a stateless signed cookie, which cannot be revoked singly);
- magiclink: ``MagicLinks.authenticate`` over MemoryStorage (token parse, keyed digest, one
  storage read, idle/lifetime check; the touch write happens at most once a minute).

Prints each as a ratio to the floor, measured in the same run. Run:
    python benchmarks/bench_session_check.py
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import statistics
import time
from collections.abc import Awaitable, Callable

from magiclink_core import MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage

ROUNDS = 7
N = 20_000


async def time_async(fn: Callable[[], Awaitable[object]]) -> float:
    best = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            await fn()
        best.append((time.perf_counter() - start) / N)
    return statistics.median(best)


async def main() -> None:
    mailer = MemoryMailer()
    links = MagicLinks(
        Settings(
            secret="bench-" + "x" * 40, base_url="https://app.example.com", links_per_address=0
        ),
        storage=MemoryStorage(),
        mailer=mailer,
    )
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    token = mailer.outbox[-1].text.split("token=")[1].split()[0]
    result = await links.verify_link(token, client)
    session_token = result.session_token
    assert session_token is not None

    key = b"k" * 32
    table = {hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest(): object()}

    async def floor() -> object:
        return table.get(hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest())

    async def magiclink() -> object:
        return await links.authenticate(session_token)

    results = {"floor (HMAC + dict lookup)": await time_async(floor)}
    try:
        from itsdangerous import TimestampSigner

        signer = TimestampSigner("bench-secret")
        cookie = signer.sign(b"eyJ1c2VyIjogIjEyMyJ9")

        async def peer() -> object:
            return signer.unsign(cookie, max_age=3600)

        results["itsdangerous TimestampSigner.unsign (Starlette sessions)"] = await time_async(peer)
    except ImportError:
        print("itsdangerous is not installed: the peer row is left out")
    results["magiclink authenticate (MemoryStorage)"] = await time_async(magiclink)

    base = results["floor (HMAC + dict lookup)"]
    print(f"{'what':60} {'µs/check':>9} {'x floor':>8}")
    for name, seconds in results.items():
        print(f"{name:60} {seconds * 1e6:9.2f} {seconds / base:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
