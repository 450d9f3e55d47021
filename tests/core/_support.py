"""Building a MagicLinks over memory adapters with a fake clock, and reading links from mail;
for the pure-domain tests, a link waiting to be clicked and the judging of a click."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis.stateful import RuleBasedStateMachine

from magiclink_core import (
    Client,
    CrossDevicePolicy,
    EmailRenderer,
    MagicLinks,
    RequestInfo,
    Settings,
    SignUp,
)
from magiclink_core.domain import flows
from magiclink_core.domain.models import Attempt, Link, Verification
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import Change, R, Storage
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock, make_record
from tests.support import SECRET, token_in

T = TypeVar("T")
BASE_URL = "https://app.example.com"
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # the pure-domain tests' present


@dataclass
class World:
    links: MagicLinks
    storage: Storage
    mailer: MemoryMailer
    clock: FakeClock

    async def client(self) -> Client:
        client, _token = await self.links.create_client()
        return client

    def last_link(self, to: str) -> str:
        """The token of the newest link emailed to ``to``."""
        message = self.mailer.last_to(to)
        assert message is not None, f"no email to {to}"
        token = token_in(message.text)
        assert token in message.html
        return token

    async def sent_sign_up(
        self, email: str = "ann@example.org", redirect_url: str = "/"
    ) -> tuple[Client, SignUp, str]:
        """A sign-up started on a new client, its link emailed: the client, the sign-up (as
        created) and the link's token."""
        client = await self.client()
        sign_up = await self.links.create_sign_up(client, email)
        await self.links.prepare_sign_up_verification(client, sign_up.id, redirect_url=redirect_url)
        return client, sign_up, self.last_link(email)


def make_world(
    storage: Storage | None = None, *, emails: EmailRenderer | None = None, **settings: Any
) -> World:
    """A MagicLinks on ``storage`` (a new memory storage by default), a memory mailer, a fake
    clock and ``emails`` (the library's templates by default), with ``settings`` over the
    tests' defaults."""
    clock = FakeClock()
    storage = storage if storage is not None else MemoryStorage()
    mailer = MemoryMailer()
    options: dict[str, Any] = {"secret": SECRET, "base_url": BASE_URL, "links_per_address": 0}
    options.update(settings)
    links = MagicLinks(
        Settings(**options), storage=storage, mailer=mailer, clock=clock, emails=emails
    )
    return World(links, storage, mailer, clock)


async def signed_up(world: World, email: str = "ann@example.org") -> tuple[Client, str]:
    """A user who signed up on a client; returns the client and the session token."""
    client, _, token = await world.sent_sign_up(email, redirect_url="/welcome")
    result = await world.links.verify_link(token, client)
    assert result.session_token is not None
    return client, result.session_token


class CountingStorage:
    """A real storage, wrapped to count its reads (``get``, ``find``, ``list``): what a waiter
    costs the database. ``until(n)`` waits, without sleeping, for the n-th read."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.reads = 0
        self._read = anyio.Event()

    async def _counted(self, call: Awaitable[T]) -> T:
        result = await call
        self.reads += 1
        self._read.set()
        return result

    async def until(self, reads: int, *, bound: float = 20) -> None:
        """Return once ``reads`` reads have happened (failing after ``bound`` seconds)."""
        with anyio.fail_after(bound):
            while self.reads < reads:
                self._read = event = anyio.Event()
                await event.wait()

    async def get(self, kind: type[R], id: str) -> R | None:
        return await self._counted(self.inner.get(kind, id))

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        return await self._counted(self.inner.find(kind, field, value))

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        return await self._counted(self.inner.list(kind, field, value))

    async def apply(self, changes: Sequence[Change]) -> None:
        await self.inner.apply(changes)

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        return await self.inner.increment(key, window=window, now=now, amount=amount)

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        return await self.inner.purge(now, limit=limit)

    async def close(self) -> None:
        await self.inner.close()


class ReadsByKind(CountingStorage):
    """A counting storage that also counts each ``get`` per kind of record (``gets["Link"]``:
    how often a link was read)."""

    def __init__(self, inner: Storage | None = None) -> None:
        super().__init__(inner if inner is not None else MemoryStorage())
        self.gets: Counter[str] = Counter()

    async def get(self, kind: type[R], id: str) -> R | None:
        self.gets[kind.__name__] += 1
        return await super().get(kind, id)


class CounterReads:
    """For the shipped adapters' contract suites, beyond what the public contract asks: reading
    a counter (``increment(amount=0)``, before every email) writes nothing."""

    async def test_reading_a_counter_starts_no_window(self, storage: Storage) -> None:
        window = timedelta(minutes=10)
        assert await storage.increment("read", window=window, now=NOW, amount=0) == (
            0,
            NOW + window,
        )
        # had the read made the counter, its window would run from NOW
        first = NOW + timedelta(minutes=4)
        assert await storage.increment("read", window=window, now=first) == (1, first + window)
        assert await storage.increment("read", window=window, now=first, amount=0) == (
            1,
            first + window,
        )


def waiting(
    requested_by: RequestInfo | None = None, **changes: object
) -> tuple[Link, Verification]:
    """client_a's link, sent at NOW and good for ten minutes, and the verification waiting on it
    (redirect ``https://a.example/``, confirmation code 123456), with ``changes`` applied."""
    link: Link = make_record(
        Link, id="d" * 64, client_id="client_a", expire_at=NOW + timedelta(minutes=10)
    )
    verification = flows.new_verification(
        now=NOW,
        ttl=timedelta(minutes=10),
        link_id=link.id,
        redirect_url="https://a.example/",
        confirmation_code="123456",
        requested_by=requested_by or RequestInfo(),
    ).model_copy(update=changes)
    return link, verification


def click(
    link: Link,
    attempt: Attempt,
    *,
    client: str | None = "client_a",
    policy: CrossDevicePolicy = CrossDevicePolicy.CONFIRM,
    code: str | None = None,
    now: datetime = NOW,
) -> flows.ClickDecision:
    """The judging of a click on ``link`` for ``attempt`` (three code tries allowed)."""
    return flows.judge_click(
        link=link,
        attempt=attempt,
        clicking_client_id=client,
        policy=policy,
        confirmation_code=code,
        max_code_attempts=3,
        now=now,
    )


class PortalMachine(RuleBasedStateMachine):
    """A hypothesis state machine whose (synchronous) rules drive the async core through a
    blocking portal, on a fake clock, mailing into a MemoryMailer."""

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = start_blocking_portal()
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self.clock = FakeClock()
        self.mailer = MemoryMailer()

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on the portal's event loop; what it returns."""
        return self.portal.call(partial(fn, *args, **kwargs))

    def teardown(self) -> None:
        self._portal_cm.__exit__(None, None, None)
