"""``SMTPMailer`` messages per second to a local aiosmtpd: its connection reused, against one
connection per message (target 6: at least 3×).

The server is aiosmtpd's ``Sink`` (accepts and discards) in a process of its own on 127.0.0.1,
pinned to one core while the mailer runs on the other (``os.sched_setaffinity``), so that neither
takes the other's CPU; the mailer sends sign-in emails rendered by the shipped templates, one after
the other. The peer is the same mailer closing its connection after every message (connect,
greeting, EHLO, STARTTLS and EHLO again, the message, QUIT each time), which is what a mailer that
keeps no connection does. Both send the same message in the same TLS mode, taking turns round
after round; the best round of each is kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from magiclink_core.emails import EmailRenderer
from magiclink_core.mailers import SMTPMailer
from magiclink_core.ports import EmailMessage

from ._harness import Section, ratio, sample_sign_in_email, us

SERVER_CORE, CLIENT_CORE = 0, 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (for STARTTLS), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def sink(port: int, tls: tuple[Path, Path] | None = None) -> subprocess.Popen[bytes]:
    """aiosmtpd's Sink on 127.0.0.1:``port`` (offering STARTTLS with ``tls``), up once it
    accepts a connection."""
    options = [] if tls is None else ["--tlscert", str(tls[0]), "--tlskey", str(tls[1])]
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, then awaited by connecting
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            *options,
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _pin(server.pid, SERVER_CORE)
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return server
    server.kill()
    raise RuntimeError("aiosmtpd did not start")


def _pin(pid: int, core: int) -> None:
    """Process ``pid`` (0: this one) on one of the cores this process may use, if it has two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.sched_setaffinity(pid, {cores[core % len(cores)]})


@contextmanager
def pinned(core: int) -> Iterator[None]:
    """This process on one core inside the block (the server has the other), as before after."""
    before = os.sched_getaffinity(0)
    _pin(0, core)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def run(quick: bool) -> Section:
    section = Section("Mail: SMTPMailer to a local aiosmtpd (target 6)")
    n, rounds = (10, 1) if quick else (150, 7)
    message = EmailRenderer().render(sample_sign_in_email())
    with tempfile.TemporaryDirectory() as folder:
        cert = certificate(Path(folder))
        context = ssl.create_default_context(cafile=str(cert[0]))
        for tls in ("starttls", "none"):
            port = free_port()
            try:
                server = await sink(port, cert if tls == "starttls" else None)
            except (OSError, RuntimeError) as exc:
                section.add("SMTPMailer", "skipped", f"aiosmtpd: {exc}")
                return section
            try:
                with pinned(CLIENT_CORE):
                    best, opened, cpu = await _rates(message, port, tls, context, n, rounds)
            finally:
                server.terminate()
                server.wait(timeout=10)
            reused, each = best["reused"], best["per message"]
            over = "STARTTLS" if tls == "starttls" else "plain SMTP (no TLS)"
            section.add(
                f"{over}: one connection per message ({opened['per message']} opened for {n})",
                f"{each:,.0f} messages/s",
            )
            section.add(
                f"{over}: SMTPMailer, its connection reused ({opened['reused']} opened for {n})",
                f"{reused:,.0f} messages/s",
                "one connection per message",
                ratio(reused, each, line=3 if tls == "starttls" else None, places=1),
                "≥ 3×" if tls == "starttls" else "",
                reused >= 3 * each if tls == "starttls" else None,
            )
            section.add(
                f"{over}: the mailer's CPU per message, its connection reused (best round)",
                us(cpu),
            )
    section.note(
        "Messages sent one after the other (each waits for the server's answer), best round; "
        "the server runs in a process of its own, on the other core from the mailer's. The "
        "mailer's CPU per message is this process's CPU time (building the MIME message, "
        "aiosmtplib, TLS, the event loop) in the best reused round. STARTTLS (the mailer's "
        "default) is what a real mail server asks for; plain SMTP on loopback shows the least "
        "a new connection costs (connect, greeting, EHLO, QUIT)."
    )
    return section


async def _rates(
    message: EmailMessage, port: int, tls: str, context: ssl.SSLContext, n: int, rounds: int
) -> tuple[dict[str, float], dict[str, int], float]:
    best = {"reused": 0.0, "per message": 0.0}
    opened = {"reused": 0, "per message": 0}
    cpu = float("inf")
    for _ in range(rounds):
        for way in best:
            mailer = SMTPMailer(
                "127.0.0.1",
                port,
                sender="noreply@example.org",
                tls=tls,  # type: ignore[arg-type]
                ssl_context=context if tls == "starttls" else None,
                local_hostname="bench.local",
            )
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                await mailer.send(message)
                if way == "per message":
                    await mailer.close()
            rate = n / (time.perf_counter() - start)
            if way == "reused":
                cpu = min(cpu, (time.process_time() - start_cpu) / n)
            await mailer.close()
            best[way] = max(best[way], rate)
            opened[way] = mailer.connections_opened
    return best, opened, cpu
