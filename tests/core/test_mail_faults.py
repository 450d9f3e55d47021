"""Mail faults lose nothing: through the real service and a real SMTP server, a link is either
delivered (and works) or reported to the caller, the attempt staying resendable; never both
missing and reported as sent."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio
import pytest

from magiclink_core import (
    Client,
    Link,
    MagicLinks,
    MailDeliveryError,
    Settings,
    SignIn,
    SignInStatus,
    SignUp,
)
from magiclink_core.mailers import SMTPMailer
from magiclink_core.ports import Change, Insert
from magiclink_core.ports import EmailMessage as EmailEnvelopeMessage
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET, token_in

from ._smtp_server import Fate, Received, SMTPServer, Transaction, running, silent_server

pytestmark = pytest.mark.anyio


class SpyStorage(MemoryStorage):
    """Memory storage that remembers the id of every link ever inserted."""

    def __init__(self) -> None:
        super().__init__()
        self.inserted_links: list[str] = []

    async def apply(self, changes: Sequence[Change]) -> None:
        await super().apply(changes)
        self.inserted_links += [
            c.record.id for c in changes if isinstance(c, Insert) and isinstance(c.record, Link)
        ]


class Switch:
    """A server fate the test changes as it goes: ``mode`` for every DATA transaction, or else a
    ``pattern`` deciding by the transaction (its recipient and how many tries it had)."""

    def __init__(self) -> None:
        self.mode: Fate = "ok"
        self.pattern: Callable[[Transaction], Fate] | None = None

    def __call__(self, transaction: Transaction) -> Fate:
        if self.pattern is not None:
            return self.pattern(transaction)
        return self.mode


class World:
    def __init__(self, server_port: int, **mailer_options: Any) -> None:
        self.clock = FakeClock()
        self.storage = SpyStorage()
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": server_port,
            "sender": "Example <noreply@example.com>",
            "tls": "none",
            "max_attempts": 3,
            "backoff": 0.01,
            "max_backoff": 0.02,
            "connect_timeout": 2.0,
            "timeout": 2.0,
            "local_hostname": "client.test",
        }
        options.update(mailer_options)
        self.use_mailer(SMTPMailer(**options))

    def use_mailer(self, mailer: SMTPMailer) -> None:
        """The app (re)started with ``mailer``, over the same storage and clock."""
        self.mailer = mailer
        self.links = MagicLinks(
            Settings(secret=SECRET, base_url="http://localhost:8000", links_per_address=0),
            storage=self.storage,
            mailer=self.mailer,
            clock=self.clock,
        )

    async def client(self) -> Client:
        client, _ = await self.links.create_client()
        return client


def token_of(received: Received) -> str:
    text, html = received.parsed().iter_parts()
    token = token_in(text.get_content())
    assert token in html.get_content(), "the HTML part lacks the link"
    return token


def tokens_to(server: SMTPServer, address: str) -> list[str]:
    return [token_of(r) for r in server.received if r.rcpt_tos == [address]]


async def register(world: World, server: SMTPServer, email: str) -> None:
    """Sign ``email`` up (through the server, which must be working)."""
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, email)
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    result = await world.links.verify_link(tokens_to(server, email)[-1], client)
    assert result.session_token is not None


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def server(switch: Switch) -> Iterator[SMTPServer]:
    with running(SMTPServer(fate=switch)) as smtp:
        yield smtp


# -- (a) a failed send leaves the attempt resendable -----------------------------------------


@pytest.mark.parametrize(("fate", "permanent"), [("451", False), ("drop", False), ("550", True)])
async def test_a_failed_sign_up_email_leaves_no_link_and_a_resendable_sign_up(
    server: SMTPServer, switch: Switch, fate: Fate, permanent: bool
) -> None:
    world = World(server.port)
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    before = await world.links.get_sign_up(client, sign_up.id)

    switch.mode = fate
    with pytest.raises(MailDeliveryError) as caught:
        await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert caught.value.permanent is permanent
    assert caught.value.code == "mail_delivery_failed"
    assert server.received == []
    (unsent,) = world.storage.inserted_links
    assert await world.storage.get(Link, unsent) is None, "a link exists that was never sent"
    after = await world.links.get_sign_up(client, sign_up.id)
    assert after.verification == before.verification is None
    assert after.status is before.status

    switch.mode = "ok"
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    (token,) = tokens_to(server, "ann@example.org")
    result = await world.links.verify_link(token, client)
    assert result.attempt.id == sign_up.id and result.session_token is not None
    await world.mailer.close()


async def test_a_failed_resend_keeps_the_earlier_link_working(
    server: SMTPServer, switch: Switch
) -> None:
    world = World(server.port)
    await register(world, server, "ann@example.org")
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, "ann@example.org")
    sent = await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    first_token = tokens_to(server, "ann@example.org")[-1]

    switch.mode = "550"
    with pytest.raises(MailDeliveryError):
        await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    assert await world.storage.get(Link, world.storage.inserted_links[-1]) is None
    after = await world.links.get_sign_in(client, sign_in.id)
    assert after.verification == sent.verification

    result = await world.links.verify_link(first_token, client)
    assert result.attempt.id == sign_in.id
    await world.mailer.close()


async def test_a_server_that_never_answers_is_reported_and_the_sign_up_stays_resendable(
    server: SMTPServer,
) -> None:
    with silent_server() as silent_port:
        world = World(silent_port, connect_timeout=0.3, timeout=0.3, max_attempts=2)
        client = await world.client()
        sign_up = await world.links.create_sign_up(client, "ann@example.org")
        with anyio.fail_after(5):
            with pytest.raises(MailDeliveryError) as caught:
                await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert not caught.value.permanent
    assert await world.storage.get(Link, world.storage.inserted_links[-1]) is None
    assert (await world.links.get_sign_up(client, sign_up.id)).verification is None

    # the mail server is back (here: another one)
    world.use_mailer(SMTPMailer("127.0.0.1", server.port, sender="noreply@example.com", tls="none"))
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    (token,) = tokens_to(server, "ann@example.org")
    assert (await world.links.verify_link(token, client)).session_token is not None
    await world.mailer.close()


# -- (b) a flaky server: every link delivered or reported ------------------------------------

FAILURES: tuple[Fate, ...] = ("421", "451", "drop")


def user_number(address: str) -> int:
    match = re.fullmatch(r"user(\d+)@example\.org", address)
    assert match is not None
    return int(match.group(1))


def a_quarter_fail(transaction: Transaction) -> Fate:
    """The messages to every 4th user fail (421, 451 or a dropped connection, in turn): for half
    of them the first try only, for the other half every try."""
    n = user_number(transaction.recipient)
    if n % 4 != 3:
        return "ok"
    if n % 8 == 3 and transaction.attempt > 0:
        return "ok"
    return FAILURES[(n // 4) % 3]


async def test_a_flaky_server_loses_no_link(server: SMTPServer, switch: Switch) -> None:
    requested = 40
    world = World(server.port, max_attempts=3)
    emails = [f"user{i}@example.org" for i in range(requested)]
    for email in emails:
        await register(world, server, email)
    registered_mail = len(server.received)
    links_before = len(world.storage.inserted_links)

    switch.pattern = a_quarter_fail
    delivered: dict[str, tuple[Client, SignIn]] = {}
    reported: dict[str, tuple[Client, SignIn]] = {}

    async def sign_in(email: str) -> None:
        client = await world.client()
        attempt = await world.links.create_sign_in(client, email)
        try:
            await world.links.prepare_first_factor(client, attempt.id, redirect_url="/")
        except MailDeliveryError as exc:
            assert not exc.permanent
            reported[email] = (client, attempt)
        else:
            delivered[email] = (client, attempt)

    async with anyio.create_task_group() as tg:
        for email in emails:
            tg.start_soon(sign_in, email)

    # every request has exactly one outcome
    assert len(delivered) + len(reported) == requested
    assert not delivered.keys() & reported.keys()
    assert sorted(reported) == sorted(e for e in emails if user_number(e) % 8 == 7)
    fates = server.handler.fates[registered_mail:]
    assert set(fates) == {"ok", *FAILURES}
    assert len(fates) > requested  # failed transactions were retried

    # what the server has is exactly what was reported delivered, one unique link each
    sent = server.received[registered_mail:]
    assert sorted(r.rcpt_tos[0] for r in sent) == sorted(delivered)
    tokens = [token_of(r) for r in sent]
    assert len(set(tokens)) == len(tokens) == len(delivered)
    for received, token in zip(sent, tokens, strict=True):
        client, attempt = delivered[received.rcpt_tos[0]]
        result = await world.links.verify_link(token, client)
        assert result.attempt.id == attempt.id and result.session_token is not None
        assert (await world.links.get_sign_in(client, attempt.id)).status is (SignInStatus.COMPLETE)

    # the reported ones left no link behind and can be sent again
    stored = [
        link_id
        for link_id in world.storage.inserted_links[links_before:]
        if await world.storage.get(Link, link_id) is not None
    ]
    assert len(stored) == len(delivered)
    switch.pattern = None
    switch.mode = "ok"
    for email, (client, attempt) in reported.items():
        assert (await world.links.get_sign_in(client, attempt.id)).verification is None
        await world.links.prepare_first_factor(client, attempt.id, redirect_url="/")
        result = await world.links.verify_link(tokens_to(server, email)[-1], client)
        assert result.attempt.id == attempt.id
    await world.mailer.close()


# -- cancellation and races (both were gaps in the core) -----------------------------------


async def cancelled_mid_send(world: World, client: Client, sign_up_id: str) -> bool:
    """Prepare the sign-up's link, and cancel the caller once the send is stuck on the silent
    server; returns whether the prepare finished anyway."""
    finished = False

    async def prepare() -> None:
        nonlocal finished
        await world.links.prepare_sign_up_verification(client, sign_up_id, redirect_url="/")
        finished = True

    async with anyio.create_task_group() as group:
        group.start_soon(prepare)
        await anyio.wait_all_tasks_blocked()  # waiting for a greeting that never comes
        group.cancel_scope.cancel()
    return finished


async def test_a_cancelled_send_leaves_no_link_behind() -> None:
    with silent_server() as silent_port:
        world = World(silent_port, connect_timeout=5, timeout=5)
        client = await world.client()
        sign_up = await world.links.create_sign_up(client, "ann@example.org")
        assert not await cancelled_mid_send(world, client, sign_up.id)
    (unsent,) = world.storage.inserted_links
    assert (await world.links.get_sign_up(client, sign_up.id)).verification is None
    assert await world.storage.get(Link, unsent) is None


async def test_a_cancelled_send_does_not_stick_the_attempt(
    server: SMTPServer,
) -> None:
    """Whatever a cancelled send leaves, a new request still delivers a working link."""
    with silent_server() as silent_port:
        world = World(silent_port, connect_timeout=5, timeout=5)
        client = await world.client()
        sign_up = await world.links.create_sign_up(client, "ann@example.org")
        assert not await cancelled_mid_send(world, client, sign_up.id)
    world.use_mailer(SMTPMailer("127.0.0.1", server.port, sender="noreply@example.com", tls="none"))
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    (token,) = tokens_to(server, "ann@example.org")
    result = await world.links.verify_link(token, client)
    assert isinstance(result.attempt, SignUp) and result.session_token is not None
    await world.mailer.close()


class FirstSendFails:
    """A mailer whose first send waits until ``release`` is set, then fails; later sends pass."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.calls = 0
        self.sent: list[EmailEnvelopeMessage] = []

    async def send(self, message: EmailEnvelopeMessage) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
            raise MailDeliveryError("the server went away")
        self.sent.append(message)
        self.release.set()


async def test_a_failed_send_overtaken_by_a_resend_leaves_no_link_behind() -> None:
    storage = SpyStorage()
    mailer = FirstSendFails()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="http://localhost:8000", links_per_address=0),
        storage=storage,
        mailer=mailer,
        clock=FakeClock(),
    )
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    failures: list[MailDeliveryError] = []

    async def first() -> None:
        try:
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        except MailDeliveryError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")

    assert len(failures) == 1 and len(mailer.sent) == 1
    unsent, sent = storage.inserted_links
    assert await storage.get(Link, sent) is not None
    assert await storage.get(Link, unsent) is None, "a link exists that was never sent"
