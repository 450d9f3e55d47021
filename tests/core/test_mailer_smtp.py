"""SMTPMailer against a real SMTP server (aiosmtpd on 127.0.0.1): delivery, TLS both ways, AUTH,
retries on temporary failures, permanent failures, timeouts, connection reuse, safe headers."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from magiclink_core import MailDeliveryError
from magiclink_core.mailers import SMTPMailer
from magiclink_core.mailers.smtp import SMTPDeliveryError
from magiclink_core.ports import EmailMessage
from magiclink_core.testing import FakeClock

from ._smtp_server import Certificate, Fate, SMTPServer, make_certificate, running, silent_server

pytestmark = pytest.mark.anyio

LINK = "http://localhost:8000/auth/v1/verify?token=mll1_" + "A" * 43
MESSAGE = EmailMessage(
    to="ann@example.org",
    subject="Sign in to Example",
    text=f"Open this link to sign in:\n\n{LINK}\n",
    html=f'<p><a href="{LINK}">Sign in</a></p>',
    kind="sign_in",
)


def mailer(port: int, **options: Any) -> SMTPMailer:
    """A mailer for the test server: plain SMTP unless told, quick retries, short timeouts."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "Example <noreply@example.com>",
        "tls": "none",
        "backoff": 0.01,
        "max_backoff": 0.05,
        "connect_timeout": 5.0,
        "timeout": 5.0,
        "local_hostname": "client.test",
    }
    settings.update(options)
    return SMTPMailer(**settings)


@pytest.fixture
def server() -> Iterator[SMTPServer]:
    with running(SMTPServer()) as smtp:
        yield smtp


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)


@pytest.fixture
def auth_server(certificate: Certificate) -> Iterator[SMTPServer]:
    """A server that wants STARTTLS, then AUTH as ``app`` / ``s3cret``."""
    users = {"app": "s3cret"}
    with running(SMTPServer(tls_context=certificate.server_context(), users=users)) as smtp:
        yield smtp


def starttls_mailer(port: int, certificate: Certificate, **options: Any) -> SMTPMailer:
    """A mailer over STARTTLS that trusts the test certificate."""
    return mailer(port, tls="starttls", ssl_context=certificate.client_context(), **options)


async def refused(smtp: SMTPMailer) -> SMTPDeliveryError:
    """Send ``MESSAGE`` with a fresh mailer, which must fail; returns why."""
    async with smtp:
        with pytest.raises(SMTPDeliveryError) as caught:
            await smtp.send(MESSAGE)
    return caught.value


def cycle(*fates: Fate) -> SMTPServer:
    """A server whose DATA transactions meet ``fates`` in turn, then always succeed."""
    return SMTPServer(fate=lambda t: fates[t.number] if t.number < len(fates) else "ok")


# -- delivery --------------------------------------------------------------------------------


async def test_a_message_is_delivered_as_multipart_with_the_headers(server: SMTPServer) -> None:
    clock = FakeClock()
    async with mailer(server.port, clock=clock) as smtp:
        await smtp.send(MESSAGE)

    (received,) = server.received
    assert received.mail_from == "noreply@example.com"
    assert received.rcpt_tos == ["ann@example.org"]
    parsed = received.parsed()
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert LINK in parts[0].get_content() and LINK in parts[1].get_content()
    assert parsed["From"].addresses[0].display_name == "Example"
    assert parsed["From"].addresses[0].addr_spec == "noreply@example.com"
    assert parsed["To"].addresses[0].addr_spec == "ann@example.org"
    assert parsed["Subject"] == "Sign in to Example"
    assert parsedate_to_datetime(parsed["Date"]) == clock.now()
    message_id = parsed["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith("@example.com>")


async def test_each_message_gets_its_own_message_id(server: SMTPServer) -> None:
    async with mailer(server.port) as smtp:
        await smtp.send(MESSAGE)
        await smtp.send(MESSAGE)
    ids = {r.parsed()["Message-ID"] for r in server.received}
    assert len(ids) == 2


async def test_a_non_ascii_subject_and_body_survive(server: SMTPServer) -> None:
    message = EmailMessage(
        to="ann@example.org", subject="Connexion à Été — ✓", text="Bonjour ✓", html="<p>Été</p>"
    )
    async with mailer(server.port) as smtp:
        await smtp.send(message)
    parsed = server.received[0].parsed()
    assert parsed["Subject"] == "Connexion à Été — ✓"
    text, html = parsed.iter_parts()
    assert "Bonjour ✓" in text.get_content() and "Été" in html.get_content()


async def test_a_non_ascii_address_is_sent_with_smtputf8(server: SMTPServer) -> None:
    message = EmailMessage(to="josé@exämple.org", subject="Hi", text="t", html="h")
    async with mailer(server.port, sender="Éxample <noreply@example.com>") as smtp:
        await smtp.send(message)
    (received,) = server.received
    assert received.rcpt_tos == ["josé@exämple.org"]
    # with SMTPUTF8 the headers travel as raw UTF-8
    assert "\r\nTo: josé@exämple.org\r\n".encode() in received.content
    assert received.parsed()["From"].addresses[0].addr_spec == "noreply@example.com"


async def test_the_mail_options_are_those_aiosmtplib_send_message_gives(
    server: SMTPServer,
) -> None:
    async with mailer(server.port) as smtp:
        await smtp.send(MESSAGE)
        await smtp.send(EmailMessage(to="josé@exämple.org", subject="Hi", text="t", html="h"))
    ascii_only, utf8 = (r.mail_options for r in server.received)
    assert "BODY=8BITMIME" in ascii_only and "SMTPUTF8" not in ascii_only
    assert "BODY=8BITMIME" in utf8 and "SMTPUTF8" in utf8


async def test_a_non_ascii_address_without_smtputf8_is_permanent_and_sends_nothing() -> None:
    server = SMTPServer(smtputf8=False)
    with running(server):
        async with mailer(server.port) as smtp:
            with pytest.raises(SMTPDeliveryError) as caught:
                await smtp.send(
                    EmailMessage(to="josé@exämple.org", subject="Hi", text="t", html="h")
                )
            await smtp.send(MESSAGE)  # and the mailer still sends the next
    assert caught.value.permanent and caught.value.attempts == 1
    assert server.transactions == 1 and server.received[0].rcpt_tos == ["ann@example.org"]


async def test_a_body_that_looks_like_a_boundary_stays_in_its_part(server: SMTPServer) -> None:
    looks_like = "===============1234567890123456789=="
    text = f"--{looks_like}\n{looks_like}\n--{looks_like}--\n= == ===\n"
    message = EmailMessage(to="ann@example.org", subject="Hi", text=text, html=f"<p>{text}</p>")
    async with mailer(server.port) as smtp:
        await smtp.send(message)
        await smtp.send(message)
    for received in server.received:
        parsed = received.parsed()
        assert parsed["MIME-Version"] == "1.0"
        plain, html = parsed.iter_parts()
        assert plain.get_content().splitlines() == text.splitlines()
        assert html.get_content().splitlines() == f"<p>{text}</p>".splitlines()
        assert plain["MIME-Version"] is None and html["MIME-Version"] is None
        assert plain["Content-Transfer-Encoding"] == "quoted-printable"


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtplib", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "magiclink_core.mailers.smtp")
    with pytest.raises(ImportError, match=r"magiclink\[smtp\]"):
        importlib.import_module("magiclink_core.mailers.smtp")


# -- TLS and AUTH ----------------------------------------------------------------------------


async def test_starttls_with_a_generated_certificate(certificate: Certificate) -> None:
    server = SMTPServer(tls_context=certificate.server_context())
    with running(server):
        async with starttls_mailer(server.port, certificate) as smtp:
            await smtp.send(MESSAGE)
            client = smtp._client
            assert client is not None and client.get_transport_info("sslcontext") is not None
    assert len(server.received) == 1


async def test_starttls_refuses_an_untrusted_certificate_for_good(
    certificate: Certificate,
) -> None:
    server = SMTPServer(tls_context=certificate.server_context())
    with running(server):
        # the system's trust store does not know the self-signed certificate
        error = await refused(mailer(server.port, tls="starttls", max_attempts=3))
    assert error.permanent and error.attempts == 1
    assert "certificate" in error.detail
    assert server.received == []


async def test_validate_certs_false_accepts_any_certificate(certificate: Certificate) -> None:
    server = SMTPServer(tls_context=certificate.server_context())
    with running(server):
        async with mailer(server.port, tls="starttls", validate_certs=False) as smtp:
            await smtp.send(MESSAGE)
    assert len(server.received) == 1


async def test_starttls_required_but_not_offered_is_permanent(server: SMTPServer) -> None:
    assert (await refused(mailer(server.port, tls="starttls"))).permanent
    assert server.received == []


async def test_implicit_tls(certificate: Certificate) -> None:
    server = SMTPServer(ssl_context=certificate.server_context())
    with running(server):
        async with mailer(
            server.port, tls="implicit", ssl_context=certificate.client_context()
        ) as smtp:
            await smtp.send(MESSAGE)
    assert len(server.received) == 1


async def test_auth_over_starttls_succeeds(
    auth_server: SMTPServer, certificate: Certificate
) -> None:
    login = {"username": "app", "password": "s3cret"}
    async with starttls_mailer(auth_server.port, certificate, **login) as smtp:
        await smtp.send(MESSAGE)
    assert auth_server.auth_attempts == [("app", True)]
    assert len(auth_server.received) == 1


async def test_a_wrong_password_is_permanent_and_not_retried(
    auth_server: SMTPServer, certificate: Certificate
) -> None:
    login = {"username": "app", "password": "wrong"}
    error = await refused(starttls_mailer(auth_server.port, certificate, max_attempts=3, **login))
    assert error.permanent and error.smtp_code == 535
    assert error.attempts == 1
    assert auth_server.auth_attempts == [("app", False)]
    assert auth_server.received == []


def test_a_password_without_tls_is_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="without TLS"):
        SMTPMailer(sender="a@example.com", tls="none", username="u", password="p")
    allowed = SMTPMailer(
        sender="a@example.com", tls="none", username="u", password="p", allow_insecure_auth=True
    )
    assert allowed.port == 25


def test_default_ports_follow_the_tls_mode() -> None:
    assert SMTPMailer(sender="a@example.com").port == 587
    assert SMTPMailer(sender="a@example.com", tls="implicit").port == 465
    assert SMTPMailer(sender="a@example.com", tls="none").port == 25


@pytest.mark.parametrize(
    "options",
    [
        {"tls": "ssl"},
        {"max_attempts": 0},
        {"timeout": 0},
        {"username": "u"},
        {"port": 70000},
        {"sender": "not an address"},
        {"sender": "a@example.com\r\nBcc: x@evil.test"},
        {"sender_name": "Example\nBcc: x@evil.test"},
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"sender": "a@example.com"}
    settings.update(options)
    with pytest.raises(ValueError):
        SMTPMailer(**settings)


# -- temporary and permanent failures --------------------------------------------------------


async def test_a_421_is_retried_then_delivered() -> None:
    server = cycle("421")
    with running(server):
        async with mailer(server.port, max_attempts=3) as smtp:
            await smtp.send(MESSAGE)
            assert smtp.connections_opened == 2  # 421 means the server closes the connection
    assert server.handler.fates == ["421", "ok"]
    assert len(server.received) == 1


async def test_a_451_and_a_dropped_connection_are_retried() -> None:
    server = cycle("451", "drop")
    with running(server):
        async with mailer(server.port, max_attempts=3) as smtp:
            await smtp.send(MESSAGE)
    assert server.handler.fates == ["451", "drop", "ok"]
    assert len(server.received) == 1


async def test_temporary_failures_give_up_after_max_attempts() -> None:
    server = SMTPServer(fate=lambda t: "451")
    with running(server):
        error = await refused(mailer(server.port, max_attempts=3))
    assert isinstance(error, MailDeliveryError)  # the port's error, as the service expects
    assert not error.permanent and error.smtp_code == 451 and error.attempts == 3
    assert error.code == "mail_delivery_failed"
    assert server.transactions == 3 and server.received == []


async def test_a_550_is_permanent_and_not_retried() -> None:
    server = cycle("550")
    with running(server):
        async with mailer(server.port, max_attempts=3) as smtp:
            with pytest.raises(SMTPDeliveryError) as caught:
                await smtp.send(MESSAGE)
            assert caught.value.permanent and caught.value.smtp_code == 550
            assert caught.value.attempts == 1 and server.transactions == 1
            # the connection is still good after a refusal: the next message goes through it
            await smtp.send(MESSAGE)
            assert smtp.connections_opened == 1
    assert len(server.received) == 1


async def test_a_recipient_refused_at_rcpt_is_permanent_and_the_next_message_goes_through() -> None:
    # the commonest refusal: "no such mailbox" at RCPT, before any DATA
    server = SMTPServer()
    server.handler.refused_recipients = frozenset({"gone@example.org"})
    with running(server):
        async with mailer(server.port, max_attempts=3) as smtp:
            with pytest.raises(SMTPDeliveryError) as caught:
                await smtp.send(dataclasses.replace(MESSAGE, to="gone@example.org"))
            assert caught.value.permanent and caught.value.smtp_code == 550
            assert caught.value.attempts == 1 and server.transactions == 0
            # the half-made envelope was reset; the kept connection takes the next message
            assert server.handler.resets == 1
            await smtp.send(MESSAGE)
            assert smtp.connections_opened == 1
    assert [r.rcpt_tos for r in server.received] == [["ann@example.org"]]


async def test_a_sender_refused_at_mail_is_permanent_and_not_retried() -> None:
    server = SMTPServer()
    server.handler.refused_senders = frozenset({"noreply@example.com"})
    with running(server):
        error = await refused(mailer(server.port, max_attempts=3))
    assert error.permanent and error.smtp_code == 553 and error.attempts == 1
    assert server.handler.resets == 1 and server.transactions == 0 and server.received == []


async def test_the_size_declared_is_the_size_of_the_message(server: SMTPServer) -> None:
    # RFC 1870: MAIL FROM's SIZE counts the message's octets, CRLF pairs included
    async with mailer(server.port) as smtp:
        await smtp.send(MESSAGE)
    (received,) = server.received
    (size,) = [o for o in received.mail_options if o.upper().startswith("SIZE=")]
    assert int(size.partition("=")[2]) == len(received.content)


async def test_backoff_grows_with_jitter_and_uses_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    server = SMTPServer(fate=lambda t: "451")
    with running(server):
        async with mailer(
            server.port, max_attempts=4, backoff=1.0, max_backoff=3.0, sleep=sleep
        ) as smtp:
            with pytest.raises(SMTPDeliveryError):
                await smtp.send(MESSAGE)
    assert len(slept) == 3  # between four attempts
    for delay, ceiling in zip(slept, [1.0, 2.0, 3.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling


async def test_a_server_that_never_answers_times_out_quickly() -> None:
    with silent_server() as port:
        async with mailer(port, connect_timeout=0.5, timeout=0.5, max_attempts=2) as smtp:
            started = time.monotonic()
            with pytest.raises(SMTPDeliveryError) as caught:
                await smtp.send(MESSAGE)
            elapsed = time.monotonic() - started
    assert not caught.value.permanent and caught.value.attempts == 2
    assert "timed out" in caught.value.detail
    assert elapsed < 3.0


async def test_a_server_that_stalls_mid_message_is_given_up_on_and_the_retry_reconnects() -> None:
    # the server took the connection, the greeting, MAIL and RCPT, then never answers the end
    # of DATA: the message's deadline cuts it off, the connection (whose replies would no
    # longer pair up) is dropped, and the retry goes out on a new one
    stall_first = SMTPServer(fate=lambda t: "stall" if t.attempt == 0 else "ok")
    with running(stall_first) as server:
        async with mailer(server.port, timeout=0.5, max_attempts=2) as smtp:
            started = time.monotonic()
            await smtp.send(MESSAGE)
            elapsed = time.monotonic() - started
            assert smtp.connections_opened == 2
    assert server.handler.fates == ["stall", "ok"]
    assert [r.rcpt_tos for r in server.received] == [[MESSAGE.to]]
    assert elapsed < 5.0  # the deadline, not a hang


async def test_a_server_that_always_stalls_mid_message_is_a_temporary_failure() -> None:
    with running(SMTPServer(fate=lambda t: "stall")) as server:
        async with mailer(server.port, timeout=0.3, max_attempts=2) as smtp:
            with pytest.raises(SMTPDeliveryError) as caught:
                await smtp.send(MESSAGE)
    assert not caught.value.permanent and caught.value.attempts == 2
    assert "did not take the message within 0.3 s" in caught.value.detail
    assert server.received == []


async def test_nobody_listening_is_a_temporary_failure() -> None:
    with silent_server() as port:
        pass  # the port is free again: connections are refused
    error = await refused(mailer(port, max_attempts=2))
    assert not error.permanent and error.attempts == 2


# -- the connection --------------------------------------------------------------------------


async def test_two_sends_share_one_connection(server: SMTPServer) -> None:
    async with mailer(server.port) as smtp:
        await smtp.send(MESSAGE)
        await smtp.send(MESSAGE)
        assert smtp.connections_opened == 1
    first, second = server.received
    assert first.peer == second.peer


async def test_concurrent_sends_take_turns_on_the_connection(server: SMTPServer) -> None:
    async with mailer(server.port) as smtp:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(smtp.send, MESSAGE)
        assert smtp.connections_opened == 1
    assert len(server.received) == 5


async def test_a_send_waiting_to_retry_does_not_hold_up_the_others() -> None:
    sleeping, wake = anyio.Event(), anyio.Event()

    async def sleep(seconds: float) -> None:
        sleeping.set()
        await wake.wait()

    slow = EmailMessage(to="slow@example.org", subject="s", text="t", html="h")
    server = SMTPServer(
        fate=lambda t: "451" if t.recipient == "slow@example.org" and t.attempt == 0 else "ok"
    )
    with running(server):
        async with mailer(server.port, sleep=sleep) as smtp, anyio.create_task_group() as tg:
            tg.start_soon(smtp.send, slow)
            await sleeping.wait()
            with anyio.fail_after(5):
                await smtp.send(MESSAGE)
            assert [r.rcpt_tos for r in server.received] == [["ann@example.org"]]
            wake.set()
    assert [r.rcpt_tos for r in server.received] == [["ann@example.org"], ["slow@example.org"]]


async def test_a_connection_closed_by_the_server_is_reopened(server: SMTPServer) -> None:
    # one attempt only: reopening a connection the server closed does not count as a failure
    async with mailer(server.port, max_attempts=1) as smtp:
        await smtp.send(MESSAGE)
        await server.close_connections()
        await smtp.send(MESSAGE)
        assert smtp.connections_opened == 2
    first, second = server.received
    assert first.peer != second.peer


async def test_a_kept_connection_found_dead_mid_send_is_reopened_at_once() -> None:
    # the second send finds the kept connection gone only once it is under way
    server = cycle("ok", "drop")
    with running(server):
        async with mailer(server.port, max_attempts=1) as smtp:
            await smtp.send(MESSAGE)
            await smtp.send(MESSAGE)
            assert smtp.connections_opened == 2
    assert server.handler.fates == ["ok", "drop", "ok"]
    assert len(server.received) == 2


async def test_a_fresh_connection_dropping_is_an_ordinary_failure() -> None:
    server = cycle("drop")
    with running(server):
        error = await refused(mailer(server.port, max_attempts=1))
    assert not error.permanent and server.received == []


async def test_close_says_quit_and_a_later_send_reconnects(server: SMTPServer) -> None:
    smtp = mailer(server.port)
    await smtp.send(MESSAGE)
    await smtp.close()
    assert smtp._client is None
    await smtp.close()  # twice is fine
    await smtp.send(MESSAGE)
    await smtp.close()
    assert smtp.connections_opened == 2 and len(server.received) == 2


# -- headers cannot be injected --------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Hello\r\nBcc: victim@evil.test"},
        {"subject": "Hello\nBcc: victim@evil.test"},
        {"subject": "Hello\rBcc: victim@evil.test"},
        {"subject": "Hello\x00"},
        {"subject": "Hello\u2028Bcc: victim@evil.test"},
        {"to": "ann@example.org\r\nBcc: victim@evil.test"},
        {"to": "ann@example.org\nX-Evil: 1"},
        {"to": "ann@example.org, victim@evil.test"},
        {"to": "Ann <ann@example.org>"},
        {"to": "not-an-address"},
    ],
)
async def test_header_injection_is_refused(server: SMTPServer, changes: dict[str, str]) -> None:
    fields = {"to": MESSAGE.to, "subject": MESSAGE.subject, "text": "t", "html": "h"}
    fields.update(changes)
    async with mailer(server.port) as smtp:
        with pytest.raises(SMTPDeliveryError) as caught:
            await smtp.send(EmailMessage(**fields))
        assert smtp.connections_opened == 0
    assert caught.value.permanent
    assert server.transactions == 0


async def test_line_breaks_in_the_bodies_stay_in_the_bodies(server: SMTPServer) -> None:
    message = EmailMessage(
        to="ann@example.org",
        subject="Hi",
        text="line\r\nBcc: victim@evil.test\r\n\r\nmore",
        html="<p>x</p>\nBcc: victim@evil.test",
    )
    async with mailer(server.port) as smtp:
        await smtp.send(message)
    (received,) = server.received
    assert received.rcpt_tos == ["ann@example.org"]
    assert received.parsed()["Bcc"] is None


# -- configuration ---------------------------------------------------------------------------


def test_repr_hides_the_password() -> None:
    smtp = SMTPMailer(
        "mail.example.com", sender="noreply@example.com", username="app", password="hunter2"
    )
    assert "hunter2" not in repr(smtp) and "hunter2" not in str(smtp)
    assert "**********" in repr(smtp)
    secret = SMTPMailer(
        "mail.example.com",
        sender="noreply@example.com",
        username="app",
        password=SecretStr("hunter2"),
    )
    assert "hunter2" not in repr(secret)


def test_from_url() -> None:
    smtp = SMTPMailer.from_url(
        "smtp://app%40example.com:p%40ss%3Aword@mail.example.com:2525"
        "?from=noreply@example.com&from_name=Example&timeout=7&max_attempts=5"
    )
    assert (smtp.host, smtp.port, smtp.tls) == ("mail.example.com", 2525, "starttls")
    assert smtp.username == "app@example.com"
    assert smtp._password is not None and smtp._password.get_secret_value() == "p@ss:word"
    assert str(smtp.sender) == "Example <noreply@example.com>"
    assert smtp.timeout == 7.0 and smtp.max_attempts == 5
    assert "p@ss" not in repr(smtp)

    implicit = SMTPMailer.from_url("smtps://mail.example.com?from=a@example.com")
    assert (implicit.tls, implicit.port) == ("implicit", 465)
    relay = SMTPMailer.from_url("smtp://127.0.0.1:25?tls=none&from=a@example.com")
    assert relay.tls == "none" and relay.username is None


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com?from=a@example.com",
        "smtp://mail.example.com",
        "smtp://mail.example.com?from=a@example.com&colour=blue",
        "smtp://u:p@mail.example.com?from=a@example.com&tls=none",
        "smtp://mail.example.com?from=a@example.com&validate_certs=maybe",
    ],
)
def test_from_url_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        SMTPMailer.from_url(url)


async def test_from_url_sends(server: SMTPServer) -> None:
    async with SMTPMailer.from_url(
        f"smtp://127.0.0.1:{server.port}?tls=none&from=noreply@example.com"
        "&local_hostname=client.test"
    ) as smtp:
        await smtp.send(MESSAGE)
    assert len(server.received) == 1


async def test_closing_magiclinks_closes_its_smtp_connection(server: SMTPServer) -> None:
    """MagicLinks.aclose (and leaving ``async with links``) releases the mail connection too."""
    from magiclink_core import MagicLinks, Settings
    from magiclink_core.storage import MemoryStorage
    from tests.support import SECRET

    smtp = mailer(server.port)
    links = MagicLinks(
        Settings(secret=SECRET, base_url="http://localhost:8000"),
        storage=MemoryStorage(),
        mailer=smtp,
    )
    async with links:
        client, _ = await links.create_client()
        sign_up = await links.create_sign_up(client, "ann@example.org")
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        await links.mail_sent()  # running, emails go out off the request path
        assert smtp._client is not None and smtp._client.is_connected
    assert smtp._client is None and len(server.received) == 1
