"""Each adapter's atomic consume against the same statement or script through the raw driver
(target 5: within 1.10×).

The consume of a link is ``Storage.apply([Update(link consumed)])``: one compare-and-set. Beside
it, the statement the adapter sends, built the same way (its text once, for PostgreSQL, whose
adapter builds it once per record kind), sent straight through the driver on a connection of
its own: ``UPDATE links SET ... WHERE id = ? AND version = ?`` through aiosqlite
(SQLite) and asyncpg (PostgreSQL), the apply script by ``EVALSHA`` through redis-py (Redis), on
a pool configured as the adapter's must be (redis-py's default pool shown beside).
Each consume takes a link of its own; wall-clock time (the work is the server's or a thread's),
the adapter and the driver taking turns call by call, the median call kept
(``_harness.interleaved_wall`` says why).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from magiclink_core.domain.models import AttemptKind, Link, Session, SignIn, SignInStatus
from magiclink_core.ports import Change, Insert, Storage, Update
from magiclink_core.storage import _sql
from magiclink_core.testing import make_record

from ._harness import Section, interleaved_wall, ratio, us
from ._stores import POSTGRES_DSN, REDIS_URL, Unavailable, open_store

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def links(n: int) -> list[Link]:
    return [
        make_record(
            Link,
            attempt_kind=AttemptKind.SIGN_IN,
            attempt_id="sia_1",
            client_id="client_1",
            expire_at=NOW.replace(year=2031),
        )
        for _ in range(n)
    ]


def consumed(link: Link) -> Link:
    return link.bumped(NOW, consumed_at=NOW, consumed_by_client="client_1")


def update_sql(link: Link, dialect: str) -> tuple[str, list[Any]]:
    """The adapters' conditional UPDATE of a consumed link (as in their ``_write``)."""
    return update_statement(dialect), update_params(link, dialect)


def update_statement(dialect: str) -> str:
    """The text of the conditional UPDATE of a link: every column but the id, in
    ``_sql.to_row``'s order, then the id and the version it expects."""
    columns = [name for name in _sql.field_types(Link) if name != "id"]
    if dialect == "postgres":
        sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(columns, start=1))
        where = f"id = ${len(columns) + 1} AND version = ${len(columns) + 2}"
    else:
        sets = ", ".join(f"{name} = ?" for name in columns)
        where = "id = ? AND version = ?"
    return f"UPDATE {Link.table} SET {sets} WHERE {where}"


def update_params(link: Link, dialect: str) -> list[Any]:
    """The UPDATE's parameters: the consumed link's columns, its id, its previous version."""
    row = _sql.to_row(link, dialect)
    record_id = row.pop("id")
    return [*row.values(), record_id, link.version - 1]


async def raw_sqlite(storage: Any, stack: AsyncExitStack) -> Callable[[Link], Awaitable[None]]:
    import aiosqlite

    connection = await aiosqlite.connect(storage.path, isolation_level=None)
    stack.push_async_callback(connection.close)
    # the adapter's settings: a commit waits for the disk (synchronous=FULL) in both
    await connection.execute("PRAGMA busy_timeout = 5000")
    await connection.execute("PRAGMA synchronous = FULL")

    async def consume(link: Link) -> None:
        sql, params = update_sql(link, "sqlite")
        if (await connection.execute(sql, params)).rowcount != 1:
            raise RuntimeError("the raw UPDATE touched no row")

    return consume


async def raw_postgres(storage: Any, stack: AsyncExitStack) -> Callable[[Link], Awaitable[None]]:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN, server_settings=storage.server_settings())
    stack.push_async_callback(connection.close)

    # the statement's text written once, as by hand (the adapter builds it once per kind)
    sql = update_statement("postgres")

    async def consume(link: Link) -> None:
        if await connection.execute(sql, *update_params(link, "postgres")) != "UPDATE 1":
            raise RuntimeError("the raw UPDATE touched no row")

    return consume


async def raw_redis(
    storage: Any, stack: AsyncExitStack, *, queueing: bool = True
) -> Callable[[Link], Awaitable[None]]:
    """EVALSHA of the apply script through redis-py. ``queueing``: on a pool configured as the
    adapter's must be (issue 10: a burst beyond the pool's size queues for a connection, a
    bounded wait, instead of failing; commands time out): redis-py's ``BlockingConnectionPool``
    with the adapter's size, wait and timeouts. Without: redis-py's default client, whose pool
    fails past its size and whose commands never time out (shown beside, for what the pool
    costs)."""
    import redis.asyncio as aioredis

    from magiclink_core.storage import redis as adapter

    if queueing:
        pool = aioredis.BlockingConnectionPool.from_url(
            REDIS_URL,
            max_connections=storage.max_connections,
            timeout=storage.pool_timeout,
            decode_responses=True,
            socket_connect_timeout=storage.connect_timeout,
            socket_timeout=storage.command_timeout,
        )
        client = aioredis.Redis.from_pool(pool)
    else:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    stack.push_async_callback(client.aclose)
    sha = await client.script_load(adapter._APPLY)

    async def consume(link: Link) -> None:
        payload = json.dumps([adapter._operation(Update(link))], separators=(",", ":"))
        reply = await client.evalsha(sha, 0, storage.prefix, payload)
        if reply[0] != "ok":
            raise RuntimeError(f"the raw script refused: {reply}")

    return consume


async def pooled_postgres(storage: Any, stack: AsyncExitStack) -> Callable[[Link], Awaitable[None]]:
    """The same UPDATE through asyncpg's own pool, used by hand as its documentation shows
    (``async with pool.acquire()``), bounded as the adapter must be: a wait for a connection
    and a command timeout. Shown beside the raw connection, not judged against."""
    import asyncpg

    pool = await asyncpg.create_pool(
        POSTGRES_DSN,
        min_size=1,
        max_size=storage.max_connections,
        command_timeout=storage.command_timeout,
        server_settings=storage.server_settings(),
    )
    stack.push_async_callback(pool.close)
    sql = update_statement("postgres")

    async def consume(link: Link) -> None:
        async with pool.acquire(timeout=storage.connect_timeout) as connection:
            if await connection.execute(sql, *update_params(link, "postgres")) != "UPDATE 1":
                raise RuntimeError("the pooled UPDATE touched no row")

    return consume


async def default_redis(storage: Any, stack: AsyncExitStack) -> Callable[[Link], Awaitable[None]]:
    return await raw_redis(storage, stack, queueing=False)


RAW = {"sqlite": raw_sqlite, "postgres": raw_postgres, "redis": raw_redis}
BESIDE = {
    "postgres": (
        "  asyncpg's pool by hand instead (async with pool.acquire(), bounded, command timeout)",
        pooled_postgres,
    ),
    "redis": (
        "  redis-py's default pool instead (fails past its size, no timeouts)",
        default_redis,
    ),
}
"""A second peer shown under an adapter's row (what a user might write instead), not judged."""


def feeder(records: list[Link]) -> Iterator[Link]:
    yield from records


Click = tuple[Link, SignIn, Session]
"""What a click writes in one batch: its link consumed, its sign-in completed, a new session."""


def clicks(n: int) -> list[Click]:
    """``n`` stored links and sign-ins (the caller inserts them) and the sessions to make."""
    return [
        (link, make_record(SignIn), make_record(Session, expire_at=NOW.replace(year=2031)))
        for link in links(n)
    ]


def click_batch(click: Click) -> list[Change]:
    link, sign_in, session = click
    return [
        Update(consumed(link)),
        Update(sign_in.bumped(NOW, status=SignInStatus.COMPLETE)),
        Insert(session),
    ]


async def raw_postgres_batch(
    storage: Any, stack: AsyncExitStack
) -> Callable[[Click], Awaitable[None]]:
    """The click's batch as a transaction through asyncpg on a connection of its own, as by
    hand: BEGIN, the three statements the adapter's ``_write`` sends, COMMIT."""
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN, server_settings=storage.server_settings())
    stack.push_async_callback(connection.close)

    async def write(click: Click) -> None:
        async with connection.transaction():
            for change in click_batch(click):
                await storage._write(connection, change)  # the statements, built as it builds

    return write


async def run(quick: bool) -> Section:
    section = Section("Atomic consume: the adapter against the raw driver (target 5)")
    n, rounds = (20, 2) if quick else (300, 9)
    async with AsyncExitStack() as stack:
        # one group per comparison, each group timed on its own: calls that take turns with
        # another store's (another server to wake, other code to bring back into the caches)
        # would pay for the switch, whichever of them came right after it
        groups: dict[str, dict[str, Callable[[], Awaitable[object]]]] = {}
        for name, make_raw in RAW.items():
            try:
                store: Storage = await stack.enter_async_context(open_store(name))
            except Unavailable as exc:
                section.add(f"{name}: atomic consume", "skipped", str(exc))
                continue
            mine, theirs = links(n * rounds), links(n * rounds)
            for batch in range(0, len(mine), 200):
                await store.apply([Insert(x) for x in mine[batch : batch + 200]])
                await store.apply([Insert(x) for x in theirs[batch : batch + 200]])
            raw = await make_raw(store, stack)
            groups[name] = {
                name: _consuming(feeder(mine), lambda link, s=store: s.apply([Update(link)])),
                f"{name} raw": _consuming(feeder(theirs), raw),
            }
            if name in BESIDE:
                # a group of its own: the judged pair is timed with nothing else between them
                # (a call pays for what the one before it left behind: asyncpg's pool used by
                # hand leaves more than either, see _harness.interleaved_wall)
                again, plain = links(n * rounds), links(n * rounds)
                for batch in range(0, len(plain), 200):
                    await store.apply([Insert(x) for x in again[batch : batch + 200]])
                    await store.apply([Insert(x) for x in plain[batch : batch + 200]])
                beside = await BESIDE[name][1](store, stack)
                groups[f"{name} beside"] = {
                    f"{name} again": _consuming(
                        feeder(again), lambda link, s=store: s.apply([Update(link)])
                    ),
                    f"{name} beside": _consuming(feeder(plain), beside),
                }
            if name == "postgres":
                mine_clicks, their_clicks = clicks(n * rounds), clicks(n * rounds)
                for group in range(0, len(mine_clicks), 100):
                    chunk = mine_clicks[group : group + 100] + their_clicks[group : group + 100]
                    await store.apply([Insert(r) for click in chunk for r in click[:2]])
                raw_batch = await raw_postgres_batch(store, stack)
                variants = groups["postgres batch"] = {}
                variants["postgres batch"] = _clicking(
                    iter(mine_clicks), lambda c, s=store: s.apply(click_batch(c))
                )
                variants["postgres batch raw"] = _clicking(iter(their_clicks), raw_batch)
        times: dict[str, float] = {}
        for variants in groups.values():
            times |= await interleaved_wall(variants, calls=n * rounds)
    for name in RAW:
        if name not in times:
            continue
        mine, theirs = times[name], times[f"{name} raw"]
        section.add(
            f"{name}: Storage.apply of a consumed link",
            us(mine),
            f"the same through the driver {us(theirs)}",
            ratio(mine, theirs, line=1.10),
            "≤ 1.10×",
            mine <= 1.10 * theirs,
        )
        if f"{name} beside" in times:
            peer, again = times[f"{name} beside"], times[f"{name} again"]
            section.add(BESIDE[name][0], us(peer), f"the adapter {us(again)}", ratio(again, peer))
    if "postgres batch" in times:
        mine, theirs = times["postgres batch"], times["postgres batch raw"]
        section.add(
            "postgres: Storage.apply of a click's batch (link consumed, sign-in completed, "
            "session made)",
            us(mine),
            f"the same as a transaction through the driver {us(theirs)}",
            ratio(mine, theirs),
        )
    section.note(
        "Wall-clock time per consume (the work waits on a thread or a server): the median of "
        f"{n * rounds:,} calls each, the variants taking turns call by call; the "
        "raw driver uses a connection of its own, the adapter its pool (its acquire and release "
        "are part of its cost); each peer shown under an adapter's row is timed in a group of "
        "its own with the adapter again, the figure beside it. The Redis peer's pool is "
        "configured as the adapter's must be (a bounded wait for a connection instead of an "
        "error past the pool's size, command timeouts: redis-py's BlockingConnectionPool); the "
        "row below it is redis-py's default client, for what that costs. The PostgreSQL peer "
        "is a connection of its own with no command timeout (the adapter has one, and sees a "
        "sent write through); the row below it is asyncpg's own pool used by hand, for what a "
        "user would otherwise write. The click's batch on PostgreSQL is one call of the "
        "batch function `migrate()` writes for these records (`magiclink_apply_<digest>`, one "
        "round trip), beside the same three statements in a transaction on a connection of "
        "its own (BEGIN, the statements, COMMIT: five round trips); not a target, the "
        "adapter's own choice measured."
    )
    return section


def _clicking(
    batches: Iterator[Click], write: Callable[[Click], Awaitable[object]]
) -> Callable[[], Awaitable[object]]:
    async def one() -> object:
        return await write(next(batches))

    return one


def _consuming(
    records: Iterator[Link], consume: Callable[[Link], Awaitable[object]]
) -> Callable[[], Awaitable[object]]:
    async def one() -> object:
        return await consume(consumed(next(records)))

    return one
