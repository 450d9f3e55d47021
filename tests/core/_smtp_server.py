"""Real SMTP servers for the mailer tests: aiosmtpd on 127.0.0.1 at a free port, in its own thread.

``SMTPServer`` records what it accepted and can be told, per DATA transaction, to refuse (421, 451,
550), to drop the connection, or to stall (no reply until the client goes away), and to refuse
some senders at MAIL (553) and some recipients at RCPT (550);
``silent_server`` accepts TCP connections and never says a word. ``make_certificate`` writes a
self-signed certificate for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import free_port

Fate = Literal["ok", "421", "451", "550", "drop", "stall"]
REPLIES: dict[str, str] = {
    "421": "421 4.3.2 Service shutting down, try again later",
    "451": "451 4.3.0 Temporary local problem, try again later",
    "550": "550 5.1.1 No such mailbox here",
}


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: Any  # (host, port) of the client connection: one value per connection
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's, e.g. BODY=8BITMIME

    def parsed(self) -> EmailMessage:
        message = message_from_bytes(self.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message


@dataclass(frozen=True)
class Transaction:
    """A DATA transaction: its number on the server and, for its (first) recipient, how many
    transactions that recipient had before (both 0-based)."""

    number: int
    recipient: str
    attempt: int


@dataclass
class Handler:
    """Decides each DATA transaction's fate and records accepted mail."""

    fate: Callable[[Transaction], Fate] = lambda t: "ok"
    received: list[Received] = field(default_factory=list)
    fates: list[Fate] = field(default_factory=list)
    refused_recipients: frozenset[str] = frozenset()  # RCPT TO answered 550
    refused_senders: frozenset[str] = frozenset()  # MAIL FROM answered 553
    resets: int = 0  # RSET commands seen
    _per_recipient: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refused_senders:
            return "553 5.7.1 Sender address rejected: not owned by the user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refused_recipients:
            return REPLIES["550"]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.resets += 1
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            recipient = str(envelope.rcpt_tos[0])
            attempt = self._per_recipient.get(recipient, 0)
            self._per_recipient[recipient] = attempt + 1
            fate = self.fate(Transaction(len(self.fates), recipient, attempt))
            self.fates.append(fate)
        if fate == "stall":
            assert isinstance(server, _SMTP)
            await server.closed.wait()  # the message was had; its reply never comes
            return "451 never sent"
        if fate == "drop":
            assert server.transport is not None
            server.transport.abort()  # gone before any reply: the client cannot know
            return "451 never sent"
        if fate == "421":
            # a server saying 421 closes the connection after the reply
            assert server.transport is not None
            asyncio.get_running_loop().call_soon(server.transport.close)
        if fate != "ok":
            return REPLIES[fate]
        assert isinstance(envelope.content, bytes)
        with self._lock:
            self.received.append(
                Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=envelope.content,
                    peer=session.peer,
                    mail_options=list(envelope.mail_options),
                )
            )
        return "250 2.0.0 OK"


class _SMTP(SMTP):
    """aiosmtpd's protocol, saying when its connection is gone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = asyncio.Event()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.closed.set()


class _Controller(Controller):
    """Keeps the SMTP protocol objects it creates, so a test can close their connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.protocols: list[_SMTP] = []

    def factory(self) -> SMTP:
        protocol = _SMTP(self.handler, **self.SMTP_kwargs)
        self.protocols.append(protocol)
        return protocol


class SMTPServer:
    """aiosmtpd listening on 127.0.0.1; ``ssl_context`` for implicit TLS, ``tls_context`` (with
    ``require_starttls``) for STARTTLS, ``users`` to require AUTH, ``smtputf8=False`` for a
    server without SMTPUTF8."""

    def __init__(
        self,
        *,
        fate: Callable[[Transaction], Fate] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tls_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        smtputf8: bool = True,
    ) -> None:
        self.handler = Handler(fate=fate) if fate else Handler()
        self.port = free_port()
        self.auth_attempts: list[tuple[str, bool]] = []
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if users is not None:
            kwargs.update(
                authenticator=self._authenticator(users),
                auth_required=True,
                auth_require_tls=True,
                # one mechanism, so a refused login is one attempt (aiosmtplib tries them all)
                auth_exclude_mechanism=["LOGIN"],
            )
        self.controller = _Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=ssl_context,
            server_hostname="mail.test",
            **kwargs,
        )

    def _authenticator(self, users: dict[str, str]) -> Callable[..., AuthResult]:
        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
        ) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and users.get(auth_data.login.decode()) == auth_data.password.decode()
            )
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
            self.auth_attempts.append((login, ok))
            # handled=False: aiosmtpd replies 535 itself (True would leave the client waiting)
            return AuthResult(success=ok, handled=False)

        return authenticate

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def transactions(self) -> int:
        """DATA transactions seen, whatever their fate."""
        return len(self.handler.fates)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    async def close_connections(self) -> None:
        """Close every client connection from the server's side, as an idle timeout would."""

        async def close_all() -> None:
            open_ones = [p for p in self.controller.protocols if p.transport is not None]
            for protocol in open_ones:
                protocol.transport.close()
            async with asyncio.timeout(5):  # a bound, in case a close is never reported
                for protocol in open_ones:
                    await protocol.closed.wait()

        future = asyncio.run_coroutine_threadsafe(close_all(), self.controller.loop)
        await anyio.to_thread.run_sync(future.result)


@contextmanager
def running(server: SMTPServer) -> Iterator[SMTPServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel completes the handshake) and never
    answers: the application never calls ``accept``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def make_certificate(directory: Path) -> Certificate:
    """A self-signed certificate valid for 127.0.0.1 and localhost, for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "magiclink test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "smtp-cert.pem"
    key_path = directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)
