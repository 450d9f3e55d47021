"""The storage contract: what every Storage adapter must do, whatever its backend.

Each suite is a class of tests over an adapter given by a fixture, in the manner of
itsdangerous's ``TestTimestampSigner(TestSigner)``: subclass it and override the fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from ..domain.models import (
    AttemptKind,
    Client,
    EmailAddress,
    Link,
    Record,
    RequestInfo,
    Session,
    SignIn,
    SignUp,
    User,
    Verification,
)
from ..domain.tokens import new_id
from ..ports import Delete, Insert, Storage, Update, WriteConflict

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def make_record(kind: type[Record], **fields: Any) -> Any:
    """A valid record of ``kind`` with sensible defaults, overridden by ``fields``."""
    base: dict[str, Any] = {
        "id": new_id(kind.id_prefix),
        "created_at": T0,
        "updated_at": T0,
    }
    defaults: dict[type[Record], dict[str, Any]] = {
        Client: {"token_digest": new_id("digest"), "last_active_at": T0},
        User: {},
        EmailAddress: {"user_id": "user_1", "email": "ann@example.org"},
        Session: {
            "user_id": "user_1",
            "client_id": "client_1",
            "token_digest": new_id("digest"),
            "last_active_at": T0,
            "expire_at": T0 + timedelta(days=30),
        },
        SignUp: {
            "client_id": "client_1",
            "email_address": "ann@example.org",
            "abandon_at": T0 + timedelta(days=1),
        },
        SignIn: {
            "client_id": "client_1",
            "identifier": "ann@example.org",
            "email_address_id": "idn_1",
            "abandon_at": T0 + timedelta(days=1),
        },
        Link: {
            "attempt_kind": AttemptKind.SIGN_IN,
            "attempt_id": "sia_1",
            "client_id": "client_1",
            "expire_at": T0 + timedelta(minutes=10),
        },
    }
    return kind.model_validate({**base, **defaults[kind], **fields})


def _verification(digit: str, *, ip_address: str) -> Verification:
    """A verification with every field set (a nested JSON column); its link id is ``digit``
    64 times."""
    from ..domain.flows import new_verification

    return new_verification(
        now=T0,
        ttl=timedelta(minutes=10),
        link_id=digit * 64,
        redirect_url=f"https://a.example/{digit}",
        confirmation_code="123456",
        requested_by=RequestInfo(user_agent="UA", ip_address=ip_address),
    )


async def _refused_as_taken(
    storage: Storage, holder: EmailAddress, newcomer: EmailAddress, unique_field: str
) -> None:
    """``newcomer`` is refused as a clash on ``unique_field`` once ``holder`` is stored, and
    nothing of it is written."""
    await storage.apply([Insert(holder)])
    with pytest.raises(WriteConflict) as caught:
        await storage.apply([Insert(newcomer)])
    assert caught.value.unique_field == unique_field
    assert await storage.get(EmailAddress, newcomer.id) is None


@pytest.mark.anyio
class StorageContract:
    """Override the ``storage`` fixture to yield a fresh, empty adapter."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def storage(self) -> AsyncIterator[Storage]:
        raise NotImplementedError("override the storage fixture")
        yield  # pragma: no cover

    # -- reading what was written --------------------------------------------------------------

    async def test_every_record_kind_round_trips(self, storage: Storage) -> None:
        verification = _verification("d", ip_address="::1")
        records = [
            make_record(Client, sign_in_id="sia_9", purge_after=T0 + timedelta(days=365)),
            make_record(User, primary_email_address_id="idn_2"),
            make_record(EmailAddress, claimed_email="ann@example.org", verification=verification),
            make_record(Session, ip_address="10.0.0.1", user_agent="Firefox on Linux"),
            make_record(SignUp, verification=verification),
            make_record(SignIn, verification=verification, user_id="user_1"),
            make_record(Link, consumed_at=T0 + timedelta(seconds=5), consumed_by_client="client_2"),
        ]
        await storage.apply([Insert(r) for r in records])
        for record in records:
            assert await storage.get(type(record), record.id) == record

    async def test_get_of_a_missing_record_is_none(self, storage: Storage) -> None:
        assert await storage.get(User, "user_missing") is None

    async def test_a_record_is_not_found_under_another_kind(self, storage: Storage) -> None:
        user = make_record(User)
        await storage.apply([Insert(user)])
        assert await storage.get(SignIn, user.id) is None

    async def test_find_by_unique_field(self, storage: Storage) -> None:
        session = make_record(Session)
        await storage.apply([Insert(session)])
        assert await storage.find(Session, "token_digest", session.token_digest) == session
        assert await storage.find(Session, "token_digest", "other") is None

    async def test_list_by_field_oldest_first(self, storage: Storage) -> None:
        later = make_record(Session, user_id="user_a", created_at=T0 + timedelta(minutes=1))
        earlier = make_record(Session, user_id="user_a")
        other = make_record(Session, user_id="user_b")
        await storage.apply([Insert(later), Insert(earlier), Insert(other)])
        assert await storage.list(Session, "user_id", "user_a") == [earlier, later]
        assert await storage.list(Session, "user_id", "user_c") == []

    # -- writing: conditions and atomicity ---------------------------------------------------

    async def test_insert_of_a_taken_id_conflicts(self, storage: Storage) -> None:
        user = make_record(User)
        await storage.apply([Insert(user)])
        with pytest.raises(WriteConflict):
            await storage.apply([Insert(user.model_copy(update={"primary_email_address_id": "x"}))])
        assert await storage.get(User, user.id) == user

    async def test_update_needs_the_previous_version(self, storage: Storage) -> None:
        user = make_record(User)
        await storage.apply([Insert(user)])
        v2 = user.bumped(T0, primary_email_address_id="idn_a")
        await storage.apply([Update(v2)])
        assert await storage.get(User, user.id) == v2
        stale = user.bumped(T0, primary_email_address_id="idn_b")  # also version 2
        with pytest.raises(WriteConflict):
            await storage.apply([Update(stale)])
        assert await storage.get(User, user.id) == v2

    async def test_update_of_a_missing_record_conflicts(self, storage: Storage) -> None:
        with pytest.raises(WriteConflict):
            await storage.apply([Update(make_record(User).bumped(T0))])

    async def test_delete_needs_the_current_version(self, storage: Storage) -> None:
        user = make_record(User)
        await storage.apply([Insert(user)])
        with pytest.raises(WriteConflict):
            await storage.apply([Delete(User, user.id, 7)])
        await storage.apply([Delete(User, user.id, 1)])
        assert await storage.get(User, user.id) is None

    async def test_a_failing_change_writes_nothing_of_its_batch(self, storage: Storage) -> None:
        user = make_record(User)
        await storage.apply([Insert(user)])
        fresh = make_record(User)
        link = make_record(Link)
        with pytest.raises(WriteConflict):
            await storage.apply([Insert(fresh), Insert(link), Update(user.bumped(T0).bumped(T0))])
        assert await storage.get(User, fresh.id) is None
        assert await storage.get(Link, link.id) is None
        assert await storage.get(User, user.id) == user

    async def test_one_batch_inserts_updates_and_deletes(self, storage: Storage) -> None:
        sign_in, session, gone = make_record(SignIn), make_record(Session), make_record(User)
        await storage.apply([Insert(sign_in), Insert(session), Insert(gone)])
        verification = _verification("e", ip_address="10.0.0.2")
        moved = sign_in.bumped(T0 + timedelta(seconds=1), verification=verification)
        ended = session.bumped(T0 + timedelta(seconds=2), ended_at=T0 + timedelta(seconds=2))
        link = make_record(Link, consumed_at=None)
        await storage.apply(
            [Update(moved), Insert(link), Update(ended), Delete(User, gone.id, gone.version)]
        )
        assert await storage.get(SignIn, sign_in.id) == moved
        assert await storage.get(Session, session.id) == ended
        assert await storage.get(Link, link.id) == link
        assert await storage.get(User, gone.id) is None

    async def test_a_unique_clash_in_a_batch_names_its_field(self, storage: Storage) -> None:
        holder = make_record(EmailAddress, user_id="user_a", claimed_email="ann@example.org")
        await storage.apply([Insert(holder)])
        fresh = make_record(User)
        newcomer = make_record(EmailAddress, user_id="user_b", claimed_email="ann@example.org")
        with pytest.raises(WriteConflict) as caught:
            await storage.apply([Insert(fresh), Insert(newcomer)])
        assert caught.value.unique_field == "claimed_email"
        assert await storage.get(User, fresh.id) is None
        assert await storage.get(EmailAddress, newcomer.id) is None

    async def test_unique_values_are_claimed_once(self, storage: Storage) -> None:
        first = make_record(EmailAddress, user_id="user_a", claimed_email="ann@example.org")
        second = make_record(EmailAddress, user_id="user_b", claimed_email="ann@example.org")
        await _refused_as_taken(storage, first, second, "claimed_email")
        # a claim through an update is refused too
        unclaimed = make_record(EmailAddress, user_id="user_c")
        await storage.apply([Insert(unclaimed)])
        with pytest.raises(WriteConflict):
            await storage.apply([Update(unclaimed.bumped(T0, claimed_email="ann@example.org"))])

    async def test_a_user_holds_an_address_once(self, storage: Storage) -> None:
        first = make_record(EmailAddress, user_id="user_a", email="ann@example.org")
        again = make_record(EmailAddress, user_id="user_a", email="ann@example.org")
        elsewhere = make_record(EmailAddress, user_id="user_b", email="ann@example.org")
        await _refused_as_taken(storage, first, again, "user_email")
        await storage.apply([Insert(elsewhere)])  # another user may add the same address
        # removed, it may be added again
        await storage.apply([Delete(EmailAddress, first.id, first.version)])
        await storage.apply([Insert(again)])
        assert await storage.list(EmailAddress, "user_id", "user_a") == [again]

    async def test_a_null_unique_value_is_not_a_claim(self, storage: Storage) -> None:
        a = make_record(EmailAddress, user_id="user_a", claimed_email=None)
        b = make_record(EmailAddress, user_id="user_b", claimed_email=None)
        await storage.apply([Insert(a), Insert(b)])
        assert await storage.find(EmailAddress, "claimed_email", "ann@example.org") is None

    async def test_two_claims_in_one_batch_conflict(self, storage: Storage) -> None:
        a = make_record(EmailAddress, user_id="user_a", claimed_email="ann@example.org")
        b = make_record(EmailAddress, user_id="user_b", claimed_email="ann@example.org")
        with pytest.raises(WriteConflict):
            await storage.apply([Insert(a), Insert(b)])
        assert await storage.get(EmailAddress, a.id) is None

    async def test_a_released_unique_value_can_be_claimed_again(self, storage: Storage) -> None:
        session = make_record(Session, token_digest="digest-1")
        await storage.apply([Insert(session)])
        moved = session.bumped(T0, token_digest="digest-2")
        await storage.apply([Update(moved)])
        assert await storage.find(Session, "token_digest", "digest-1") is None
        assert await storage.find(Session, "token_digest", "digest-2") == moved
        other = make_record(Session, token_digest="digest-1")
        await storage.apply([Insert(other)])
        await storage.apply([Delete(Session, other.id, other.version)])
        assert await storage.find(Session, "token_digest", "digest-1") is None

    async def test_a_value_moves_between_two_unique_fields_of_one_record(
        self, storage: Storage
    ) -> None:
        # a session's token and the one it replaced swap when the older one is presented again
        session = make_record(
            Session,
            token_digest="digest-new",
            previous_token_digest="digest-old",
            previous_token_until=T0 + timedelta(minutes=1),
        )
        await storage.apply([Insert(session)])
        assert await storage.find(Session, "previous_token_digest", "digest-old") == session
        swapped = session.bumped(T0, token_digest="digest-old", previous_token_digest="digest-new")
        await storage.apply([Update(swapped)])
        assert await storage.find(Session, "token_digest", "digest-old") == swapped
        assert await storage.find(Session, "previous_token_digest", "digest-new") == swapped
        assert await storage.find(Session, "token_digest", "digest-new") is None
        assert await storage.find(Session, "previous_token_digest", "digest-old") is None
        clash = make_record(Session, previous_token_digest="digest-new")
        with pytest.raises(WriteConflict) as refused:
            await storage.apply([Insert(clash)])
        assert refused.value.unique_field == "previous_token_digest"
        cleared = swapped.bumped(T0, previous_token_digest=None, previous_token_until=None)
        await storage.apply([Update(cleared)])
        assert await storage.find(Session, "previous_token_digest", "digest-new") is None
        assert await storage.find(Session, "token_digest", "digest-old") == cleared

    async def test_an_update_moves_a_record_between_lists(self, storage: Storage) -> None:
        session = make_record(Session, user_id="user_a")
        await storage.apply([Insert(session)])
        moved = session.bumped(T0, user_id="user_b")
        await storage.apply([Update(moved)])
        assert await storage.list(Session, "user_id", "user_a") == []
        assert await storage.list(Session, "user_id", "user_b") == [moved]

    async def test_deleted_and_purged_records_leave_no_lookups(self, storage: Storage) -> None:
        deleted = make_record(Session, user_id="user_d", token_digest="digest-d")
        purged = make_record(
            Session, user_id="user_d", token_digest="digest-p", purge_after=T0 - timedelta(1)
        )
        await storage.apply([Insert(deleted), Insert(purged)])
        await storage.apply([Delete(Session, deleted.id, deleted.version)])
        assert await storage.purge(T0) == 1
        assert await storage.list(Session, "user_id", "user_d") == []
        assert await storage.find(Session, "token_digest", "digest-d") is None
        assert await storage.find(Session, "token_digest", "digest-p") is None

    # -- races -------------------------------------------------------------------------------

    async def test_a_write_is_read_back_at_once_while_other_tasks_read(
        self, storage: Storage
    ) -> None:
        """Once ``apply`` returns, ``get``, ``find`` and ``list`` see what it wrote, even while
        other tasks keep reading (a reader stuck on an older snapshot would answer None or the
        previous version): a browser that just created a sign-in must be able to load it."""
        busy = make_record(Session, user_id="user_busy")
        await storage.apply([Insert(busy)])
        stop = anyio.Event()

        async def keep_reading() -> None:
            while not stop.is_set():
                await storage.get(Session, busy.id)
                await storage.find(Session, "token_digest", busy.token_digest)
                await storage.list(Session, "user_id", busy.user_id)
                await anyio.lowlevel.checkpoint()  # an adapter that never awaits still yields

        misses: list[str] = []
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(keep_reading)
            try:
                for n in range(150):
                    await anyio.lowlevel.checkpoint()  # let the readers in before each write
                    session = make_record(Session, user_id=f"user_{n}")
                    await storage.apply([Insert(session)])
                    if await storage.get(Session, session.id) != session:
                        misses.append(f"get {n}")
                    if await storage.find(Session, "token_digest", session.token_digest) != session:
                        misses.append(f"find {n}")
                    if await storage.list(Session, "user_id", session.user_id) != [session]:
                        misses.append(f"list {n}")
                    moved = session.bumped(T0, token_digest=f"moved-{session.token_digest}")
                    await storage.apply([Update(moved)])
                    if await storage.get(Session, session.id) != moved:
                        misses.append(f"get after update {n}")
                    if await storage.find(Session, "token_digest", moved.token_digest) != moved:
                        misses.append(f"find after update {n}")
            finally:
                stop.set()
        assert not misses, f"{len(misses)} reads missed a fresh write: {misses[:8]}"

    async def test_one_of_a_hundred_concurrent_consumptions_wins(self, storage: Storage) -> None:
        link = make_record(Link)
        await storage.apply([Insert(link)])
        wins: list[str] = []

        async def consume(n: int) -> None:
            try:
                await storage.apply(
                    [Update(link.bumped(T0, consumed_at=T0, consumed_by_client=f"client_{n}"))]
                )
            except WriteConflict:
                return
            wins.append(f"client_{n}")

        async with anyio.create_task_group() as group:
            for n in range(100):
                group.start_soon(consume, n)
        assert len(wins) == 1
        stored = await storage.get(Link, link.id)
        assert stored is not None and stored.consumed_by_client == wins[0]

    async def test_of_concurrent_batches_on_one_record_one_wins_whole(
        self, storage: Storage
    ) -> None:
        # as clicks of one link from many tabs: each batch consumes the link, completes the
        # sign-in and makes a session; the losers must leave no session behind
        link, sign_in = make_record(Link), make_record(SignIn)
        await storage.apply([Insert(link), Insert(sign_in)])
        sessions = {n: make_record(Session, client_id=f"client_{n}") for n in range(40)}
        wins: list[int] = []

        async def click(n: int) -> None:
            try:
                await storage.apply(
                    [  # the insert first: a store that wrote part of a batch would keep it
                        Insert(sessions[n]),
                        Update(link.bumped(T0, consumed_at=T0, consumed_by_client=f"client_{n}")),
                        Update(sign_in.bumped(T0, created_session_id=sessions[n].id)),
                    ]
                )
            except WriteConflict:
                return
            wins.append(n)

        async with anyio.create_task_group() as group:
            for n in sessions:
                group.start_soon(click, n)
        assert len(wins) == 1
        winner = wins[0]
        stored = await storage.get(SignIn, sign_in.id)
        assert stored is not None and stored.created_session_id == sessions[winner].id
        for n, session in sessions.items():
            assert (await storage.get(Session, session.id) is not None) == (n == winner)

    async def test_one_of_many_concurrent_address_claims_wins(self, storage: Storage) -> None:
        wins: list[str] = []

        async def claim(n: int) -> None:
            address = make_record(
                EmailAddress, user_id=f"user_{n}", claimed_email="race@example.org"
            )
            try:
                await storage.apply([Insert(address)])
            except WriteConflict:
                return
            wins.append(address.id)

        async with anyio.create_task_group() as group:
            for n in range(50):
                group.start_soon(claim, n)
        assert len(wins) == 1
        found = await storage.find(EmailAddress, "claimed_email", "race@example.org")
        assert found is not None and found.id == wins[0]

    # -- counters and purge ------------------------------------------------------------------

    async def test_counter_counts_and_resets_after_its_window(self, storage: Storage) -> None:
        window = timedelta(minutes=10)
        assert await storage.increment("k", window=window, now=T0) == (1, T0 + window)
        assert await storage.increment("k", window=window, now=T0 + timedelta(minutes=1)) == (
            2,
            T0 + window,
        )
        later = T0 + window + timedelta(seconds=1)
        assert await storage.increment("k", window=window, now=later) == (1, later + window)
        assert (await storage.increment("other", window=window, now=T0))[0] == 1

    async def test_an_increment_of_zero_reads_without_counting(self, storage: Storage) -> None:
        window = timedelta(minutes=10)
        assert await storage.increment("peek", window=window, now=T0, amount=0) == (
            0,
            T0 + window,
        )
        await storage.increment("peek", window=window, now=T0)
        await storage.increment("peek", window=window, now=T0)
        later = T0 + timedelta(minutes=1)
        assert await storage.increment("peek", window=window, now=later, amount=0) == (
            2,
            T0 + window,
        )
        past = T0 + window
        assert (await storage.increment("peek", window=window, now=past, amount=0))[0] == 0

    async def test_concurrent_increments_are_not_lost(self, storage: Storage) -> None:
        counts: list[int] = []

        async def bump() -> None:
            count, _ = await storage.increment("hot", window=timedelta(hours=1), now=T0)
            counts.append(count)

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(bump)
        assert sorted(counts) == list(range(1, 101))

    async def test_purge_removes_only_what_is_past_due(self, storage: Storage) -> None:
        due = make_record(Link, purge_after=T0 - timedelta(seconds=1))
        not_yet = make_record(Link, purge_after=T0 + timedelta(seconds=1))
        never = make_record(User)
        claimed = make_record(EmailAddress, claimed_email="gone@example.org", purge_after=T0)
        await storage.apply([Insert(due), Insert(not_yet), Insert(never), Insert(claimed)])
        assert await storage.purge(T0) == 2
        assert await storage.get(Link, due.id) is None
        assert await storage.get(Link, not_yet.id) == not_yet
        assert await storage.get(User, never.id) == never
        assert await storage.find(EmailAddress, "claimed_email", "gone@example.org") is None

    async def test_purge_respects_its_limit(self, storage: Storage) -> None:
        links = [make_record(Link, purge_after=T0 - timedelta(hours=1)) for _ in range(5)]
        await storage.apply([Insert(link) for link in links])
        assert await storage.purge(T0, limit=3) == 3
        assert await storage.purge(T0, limit=3) == 2
        assert await storage.purge(T0, limit=3) == 0
