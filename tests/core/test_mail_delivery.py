"""Emails go out off the request path while MagicLinks runs, against a real SMTP server in the
test: a prepare answers before the mail server does, temporary failures are retried until the
link would expire, and an email that never goes out takes its link with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Literal

import anyio
import anyio.to_thread
import pytest

from magiclink_core import (
    FailureReason,
    MagicLinkFailedError,
    MagicLinks,
    Settings,
    StorageUnavailableError,
    VerificationStatus,
)
from magiclink_core.domain.models import Link
from magiclink_core.mailers import SMTPMailer
from magiclink_core.ports import Change
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET, token_in

from ._smtp_server import Fate, SMTPServer, Transaction, running

pytestmark = pytest.mark.anyio


class OutageStorage(MemoryStorage):
    """Memory storage whose next ``failures`` writes fail as unavailable: ``"refused"`` (nothing
    written) or ``"answer_lost"`` (written, but the answer never came: the outcome unknown).
    Called through a storage budget like any storage that can wait."""

    never_waits = False

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.failed = 0
        self.mode: Literal["refused", "answer_lost"] = "refused"
        self.failing = anyio.Event()  # set at the first failed write

    async def apply(self, changes: Sequence[Change]) -> None:
        if self.failures <= 0:
            return await super().apply(changes)
        if self.mode == "answer_lost":
            await super().apply(changes)  # a lost race stays a lost race
        self.failures -= 1
        self.failed += 1
        self.failing.set()
        raise StorageUnavailableError()


def make_links(
    server: SMTPServer,
    clock: FakeClock,
    storage: MemoryStorage | None = None,
    **settings: Any,
) -> MagicLinks:
    options: dict[str, Any] = {
        "mail_first_retry": timedelta(milliseconds=10),
        "mail_max_retry": timedelta(milliseconds=50),
        **settings,
    }
    return MagicLinks(
        Settings(secret=SECRET, base_url="http://localhost:8000", **options),
        storage=storage or MemoryStorage(),
        mailer=SMTPMailer(
            "127.0.0.1", server.port, sender="noreply@example.com", tls="none", max_attempts=1
        ),
        clock=clock,
    )


@asynccontextmanager
async def serving(fate: Callable[[Transaction], Fate]) -> AsyncIterator[SMTPServer]:
    with running(SMTPServer(fate=fate)) as server:
        yield server


async def sign_up(links: MagicLinks, email: str = "ann@example.org") -> tuple[Any, Any]:
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, email)
    prepared = await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    return client, prepared


async def test_a_running_instance_answers_before_the_mail_server_does() -> None:
    release = threading.Event()

    def slow(transaction: Transaction) -> Fate:
        release.wait(10)  # the mail server takes its time (in its own thread)
        return "ok"

    async with serving(slow) as server:
        links = make_links(server, FakeClock())
        async with links:
            with anyio.fail_after(5):  # the answer does not wait for the mail server
                client, _ = await sign_up(links)
            assert server.received == []
            release.set()
            with anyio.fail_after(10):
                await links.mail_sent()
            (received,) = server.received
            result = await links.verify_link(
                token_in(received.parsed().get_body(("plain",)).get_content()), client
            )
            assert result.session_token is not None


async def test_temporary_failures_are_retried_off_the_request_path() -> None:
    async with serving(lambda t: "421" if t.number < 3 else "ok") as server:
        links = make_links(server, FakeClock())
        async with links:
            await sign_up(links)
            with anyio.fail_after(10):
                await links.mail_sent()
        assert server.transactions == 4 and len(server.received) == 1


async def test_a_refused_email_withdraws_its_link_and_the_waiting_page_learns_it() -> None:
    async with serving(lambda t: "550") as server:
        links = make_links(server, FakeClock())
        async with links:
            client, prepared = await sign_up(links)
            assert prepared.verification is not None
            link_id = prepared.verification.link_id
            with anyio.fail_after(10):
                waited = await links.wait_for_sign_up(client, prepared.id)
                await links.mail_sent()
            assert waited.verification is not None
            assert waited.verification.status is VerificationStatus.FAILED
            assert await links.storage.get(Link, link_id) is None


async def test_an_email_still_failing_when_its_link_expires_is_given_up() -> None:
    clock = FakeClock()
    retried = threading.Event()

    def failing(transaction: Transaction) -> Fate:
        if transaction.number >= 1:
            retried.set()
        return "451"

    async with serving(failing) as server:
        links = make_links(server, clock)
        async with links:
            client, prepared = await sign_up(links)
            with anyio.fail_after(10):
                assert await anyio.to_thread.run_sync(retried.wait, 10)  # failing, and retried
                clock.advance(links.settings.link_ttl)
                await links.mail_sent()
            after = await links.get_sign_up(client, prepared.id)
            assert after.verification is not None
            assert after.verification.status is not VerificationStatus.UNVERIFIED


async def test_an_email_unsent_at_shutdown_takes_its_link_with_it() -> None:
    release = threading.Event()

    def stuck(transaction: Transaction) -> Fate:
        release.wait(10)
        return "ok"

    async with serving(stuck) as server:
        links = make_links(server, FakeClock(), mail_shutdown_grace=timedelta(milliseconds=50))
        storage = links.storage
        async with links:
            client, prepared = await sign_up(links)
        release.set()
        assert prepared.verification is not None
        assert await storage.get(Link, prepared.verification.link_id) is None
        del client


async def test_not_running_a_failure_reaches_the_caller_and_the_attempt_stays_resendable() -> None:
    async with serving(lambda t: "550" if t.number == 0 else "ok") as server:
        links = make_links(server, FakeClock())
        client, _ = await links.create_client()
        sign_up_ = await links.create_sign_up(client, "ann@example.org")
        with pytest.raises(Exception) as caught:
            await links.prepare_sign_up_verification(client, sign_up_.id, redirect_url="/")
        assert caught.value.__class__.__name__ == "SMTPDeliveryError"
        again = await links.prepare_sign_up_verification(client, sign_up_.id, redirect_url="/")
        assert again.verification is not None
        with pytest.raises(MagicLinkFailedError):
            await links.verify_link("mll1_" + "A" * 43, client)
        await links.aclose()


def refused_after(release: threading.Event) -> Callable[[Transaction], Fate]:
    """A mail server that refuses every email for good, once ``release`` is set."""

    def fate(transaction: Transaction) -> Fate:
        release.wait(10)  # (in the server's own thread)
        return "550"

    return fate


@pytest.mark.parametrize(("mode", "failures"), [("refused", 3), ("answer_lost", 2)])
async def test_a_refused_email_is_withdrawn_once_the_storage_is_back(
    mode: Literal["refused", "answer_lost"], failures: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "magiclink")
    release = threading.Event()
    storage = OutageStorage()
    async with serving(refused_after(release)) as server:
        links = make_links(server, FakeClock(), storage)
        async with links:
            client, prepared = await sign_up(links)
            assert prepared.verification is not None
            storage.failures, storage.mode = failures, mode  # an outage as the email is refused
            release.set()
            with anyio.fail_after(5):
                waited = await links.wait_for_sign_up(
                    client, prepared.id, since_version=prepared.version
                )
                await links.mail_sent()
            assert storage.failed == failures
            assert waited.verification is not None
            assert waited.verification.status is VerificationStatus.FAILED
            assert waited.verification.failure_reason is FailureReason.UNDELIVERABLE
            assert await storage.get(Link, prepared.verification.link_id) is None
    outage_lines = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "storage" in r.getMessage().lower()
    ]
    # once, not per try: the storage's detail, and the delivery's line that it waits
    assert [r.name for r in outage_lines] == ["magiclink", "magiclink.delivery"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_withdrawal_is_given_up_when_the_link_expires() -> None:
    clock = FakeClock()
    release = threading.Event()
    storage = OutageStorage()
    async with serving(refused_after(release)) as server:
        links = make_links(server, clock, storage)
        async with links:
            client, prepared = await sign_up(links)
            storage.failures = 10**9  # the storage never comes back
            release.set()
            with anyio.fail_after(5):
                await storage.failing.wait()
                clock.advance(links.settings.link_ttl)  # the link is dead anyway
                await links.mail_sent()
            storage.failures = 0
            after = await links.get_sign_up(client, prepared.id)
            assert after.verification is not None
            assert after.verification.status is VerificationStatus.EXPIRED


async def test_a_withdrawal_waiting_for_the_storage_ends_within_the_shutdown_grace() -> None:
    release = threading.Event()
    storage = OutageStorage()
    async with serving(refused_after(release)) as server:
        links = make_links(
            server,
            FakeClock(),
            storage,
            mail_first_retry=timedelta(minutes=1),  # without the grace, a long wait
            mail_max_retry=timedelta(minutes=1),
            mail_shutdown_grace=timedelta(milliseconds=100),
        )
        with anyio.fail_after(5):
            async with links:
                await sign_up(links)
                storage.failures = 10**9
                release.set()
                await storage.failing.wait()
        assert storage.failed >= 1
