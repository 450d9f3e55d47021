"""Sends email over SMTP with aiosmtplib (the ``smtp`` extra).

One connection is opened on the first send and kept for the next ones, one attempt at a time (a
lock, released while a send waits to retry); a connection the server closed is reopened. A send
is tried up to ``max_attempts`` times when the failure is temporary (a 4xx reply, a dropped
connection, a timeout), sleeping an exponentially growing, jittered delay between tries; a
permanent failure (a 5xx reply, a refused certificate, a server that lacks STARTTLS or AUTH) is
reported at once. Either way the caller gets a :class:`SMTPDeliveryError`, a
:class:`~magiclink_core.domain.errors.MailDeliveryError` whose ``permanent`` says which.

Messages are ``multipart/alternative`` (text, then HTML), with ``Message-ID``, ``Date``,
``From``, ``To`` and ``Subject``, as the standard :mod:`email` package writes them (see
:mod:`._smtp_message`: to a plain ASCII address, the bytes are joined directly, tested to be the
email package's own), flattened once per message and sent with aiosmtplib's MAIL, RCPT and DATA
(as its ``sendmail`` sends them, without its second parse of the addresses), with the options
its ``send_message`` would add (``SMTPUTF8`` for an address not in ASCII, ``BODY=8BITMIME`` when
the server offers it) and the message's ``SIZE`` when the server takes one. A subject, address
or name holding a line break or another control character is refused before anything is sent, so
nothing from user input can add a header.

A temporary failure after the server had the whole message (a connection dropped before the final
reply) may deliver the email twice; a link sent twice is the same link, which is better than one
reported as sent and lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import unicodedata
from collections.abc import Awaitable, Callable
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address, AddressHeader
from email.message import EmailMessage as MIMEMessage
from email.utils import parseaddr
from types import TracebackType
from typing import Any, Literal, Self, cast, get_args
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
from pydantic import SecretStr

from ..domain.errors import MailDeliveryError
from ..ports import Clock, EmailMessage, SystemClock

try:
    import aiosmtplib
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "SMTPMailer needs aiosmtplib, which comes with the smtp extra: "
        "pip install 'magiclink[smtp]'"
    ) from exc

# after the check above, so a missing extra is named (this module imports aiosmtplib too)
from ._smtp_failures import classify, connection_still_good, is_disconnect
from ._smtp_message import HEADERS, MessageBuilder, flatten

logger = logging.getLogger("magiclink.smtp")

TLSMode = Literal["starttls", "implicit", "none"]
"""``starttls``: plain connection upgraded by STARTTLS, required (port 587). ``implicit``: TLS
from the first byte (port 465). ``none``: no encryption (a local relay only)."""

_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "implicit": 465, "none": 25}
_SCHEME_TLS: dict[str, TLSMode] = {"smtp": "starttls", "smtps": "implicit"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SMTPDeliveryError(MailDeliveryError):
    """The SMTP server did not take the message.

    ``permanent`` is False when trying again later may work. ``detail`` says what went wrong (for
    logs and operators, not for end users: it may quote the server), ``smtp_code`` is the server's
    reply code if it gave one, ``attempts`` how many times the message was tried.
    """

    def __init__(
        self,
        detail: str,
        *,
        permanent: bool,
        smtp_code: int | None = None,
        attempts: int = 0,
    ) -> None:
        self.detail = detail
        self.smtp_code = smtp_code
        self.attempts = attempts
        super().__init__(
            "We could not send an email to that address." if permanent else None,
            permanent=permanent,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(permanent={self.permanent!r}, smtp_code={self.smtp_code!r}, "
            f"attempts={self.attempts!r}, detail={self.detail!r})"
        )

    def __str__(self) -> str:
        return self.detail


class SMTPMailer:
    """A :class:`~magiclink_core.ports.Mailer` that hands messages to an SMTP server.

    :param host: the server's name or address.
    :param port: defaults to 587 for ``starttls``, 465 for ``implicit``, 25 for ``none``.
    :param sender: the From address, ``noreply@example.com`` or ``Example <noreply@example.com>``.
    :param sender_name: a display name for From (overrides one given in ``sender``).
    :param username: log in with this user (AUTH) after TLS is up.
    :param password: its password; kept as a :class:`~pydantic.SecretStr`, masked in ``repr``.
    :param tls: ``starttls`` (default), ``implicit`` or ``none``.
    :param allow_insecure_auth: allow a password over ``tls="none"``; refused otherwise.
    :param ssl_context: the TLS context, e.g. to trust a private CA; if given, it is used as is
        and ``validate_certs`` is ignored.
    :param validate_certs: check the server's certificate and name (default True).
    :param connect_timeout: seconds to connect, including TLS and the server's greeting.
    :param timeout: seconds one message may take on an open connection (its MAIL, RCPT and
        DATA, the server's replies included), and the QUIT when closing.
    :param max_attempts: tries per message when failures are temporary (at least 1).
    :param backoff: the delay before the first retry, in seconds; it doubles at each retry (with
        jitter: a random value between half and all of it), up to ``max_backoff``.
    :param local_hostname: the name sent with EHLO; defaults to this machine's FQDN.
    :param clock: the clock that dates messages.
    :param sleep: how to wait between retries (``anyio.sleep`` by default).
    :raises ValueError: an option is invalid or unsafe.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        *,
        sender: str,
        sender_name: str | None = None,
        username: str | None = None,
        password: str | SecretStr | None = None,
        tls: TLSMode = "starttls",
        allow_insecure_auth: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        validate_certs: bool = True,
        connect_timeout: float = 10.0,
        timeout: float = 30.0,
        max_attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        local_hostname: str | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if tls not in get_args(TLSMode):
            raise ValueError(f"tls must be one of {get_args(TLSMode)}, not {tls!r}")
        if not host or _unsafe(host):
            raise ValueError("host must be a host name or address")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {port}")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if username is not None and tls == "none" and not allow_insecure_auth:
            raise ValueError(
                "refusing to send a password without TLS: use tls='starttls' or 'implicit', "
                "or set allow_insecure_auth=True for a trusted local relay"
            )
        if ssl_context is not None and tls == "none":
            raise ValueError("ssl_context has no use with tls='none'")
        if connect_timeout <= 0 or timeout <= 0:
            raise ValueError("timeouts must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff < 0 or max_backoff < 0:
            raise ValueError("backoff delays cannot be negative")
        self.host = host
        self.port = port if port is not None else _DEFAULT_PORTS[tls]
        self.tls: TLSMode = tls
        self.sender = _sender_address(sender, sender_name)
        self.username = username
        self._password = SecretStr(password) if isinstance(password, str) else password
        self.ssl_context = ssl_context
        self.validate_certs = validate_certs
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.local_hostname = local_hostname
        self.clock: Clock = clock or SystemClock()
        self._sleep = sleep or anyio.sleep
        # no checkpoint (a trip through the event loop) when the connection is free: every
        # attempt awaits the server while holding it, so others still get their turn
        self._lock = anyio.Lock(fast_acquire=True)
        self._client: aiosmtplib.SMTP | None = None
        self._builder = MessageBuilder(self.sender)
        self.connections_opened = 0
        """How many SMTP connections this mailer has opened (to watch connection reuse)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SMTPMailer:
        """A mailer from a URL, e.g. ``smtp://user:pass@mail.example.com:587?from=noreply@example.com``.

        The scheme ``smtp`` means STARTTLS and ``smtps`` implicit TLS, unless the query says
        ``tls=starttls|implicit|none``. The user and password are percent-decoded. The query may
        also hold ``from``, ``from_name``, ``timeout``, ``connect_timeout``, ``max_attempts``,
        ``backoff``, ``max_backoff``, ``validate_certs``, ``allow_insecure_auth`` and
        ``local_hostname``; keyword ``options`` override it (e.g. ``ssl_context``).

        :raises ValueError: the URL is not an SMTP URL, or holds an unknown or invalid option.
        """
        parts = urlsplit(url)
        if parts.scheme not in _SCHEME_TLS:
            raise ValueError("an SMTP URL starts with smtp:// (STARTTLS) or smtps:// (implicit)")
        if not parts.hostname:
            raise ValueError("the SMTP URL has no host")
        kwargs: dict[str, Any] = {"host": parts.hostname, "port": parts.port}
        kwargs["tls"] = _SCHEME_TLS[parts.scheme]
        if parts.username is not None:
            kwargs["username"] = unquote(parts.username)
            kwargs["password"] = SecretStr(unquote(parts.password or ""))
        converters: dict[str, tuple[str, Callable[[str], Any]]] = {
            "from": ("sender", str),
            "from_name": ("sender_name", str),
            "tls": ("tls", str),
            "timeout": ("timeout", float),
            "connect_timeout": ("connect_timeout", float),
            "max_attempts": ("max_attempts", int),
            "backoff": ("backoff", float),
            "max_backoff": ("max_backoff", float),
            "validate_certs": ("validate_certs", _boolean),
            "allow_insecure_auth": ("allow_insecure_auth", _boolean),
            "local_hostname": ("local_hostname", str),
        }
        for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if key not in converters:
                raise ValueError(f"unknown SMTP URL option {key!r}")
            name, convert = converters[key]
            kwargs[name] = convert(value)
        kwargs.update(options)
        if "sender" not in kwargs:
            raise ValueError("say who the mail is from: add ?from=noreply@example.com")
        return cls(**kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(host={self.host!r}, port={self.port!r}, tls={self.tls!r}, "
            f"sender={str(self.sender)!r}, username={self.username!r}, "
            f"password={self._password!r})"
        )

    # -- building ----------------------------------------------------------------------------

    def build_message(self, message: EmailMessage) -> MIMEMessage:
        """The MIME message for ``message``: multipart/alternative, text then HTML.

        :raises SMTPDeliveryError: (permanent) the recipient or subject is not safe to put in a
            header: a line break or another control character, or not an email address.
        """
        return self._build(message, _recipient_header(message.to))

    def _build(self, message: EmailMessage, to: AddressHeader) -> MIMEMessage:
        _check_header("subject", message.subject)
        builder = self._builder
        return builder.build(message, to, self.clock.now(), builder.message_id())

    def _flattened(self, message: EmailMessage) -> tuple[bytes, str, bool]:
        """The bytes of DATA for ``message``, the RCPT address, and whether the transaction
        needs SMTPUTF8. Written directly for a plain address (the common case: what the email
        package would write, without building a tree of it), else built by the email package.

        :raises SMTPDeliveryError: (permanent) as :meth:`build_message`.
        """
        _check_header("subject", message.subject)
        builder = self._builder
        now, message_id = self.clock.now(), builder.message_id()
        data = builder.as_bytes(message, message.to, now, message_id)
        if data is not None:
            return data, message.to, False
        to = _recipient_header(message.to)  # parsed once: the To header and the RCPT address
        recipient = to.addresses[0].addr_spec
        # aiosmtplib's test for an SMTPUTF8 transaction: an address not in ASCII
        utf8 = not (self.sender.addr_spec + recipient).isascii()
        mime = builder.build(message, to, now, message_id)
        return flatten(mime, utf8=utf8), recipient, utf8

    # -- sending -----------------------------------------------------------------------------

    async def send(self, message: EmailMessage) -> None:
        """Hand ``message`` to the server, retrying temporary failures.

        :raises SMTPDeliveryError: the message was not accepted; ``permanent`` says whether a
            later try could work.
        """
        # built and flattened once, before taking the connection, whatever the attempts
        data, recipient, utf8 = self._flattened(message)
        attempt = 0
        free_reconnect = True
        while True:
            attempt += 1
            # the connection is held for one attempt: other sends go ahead while this one waits
            async with self._lock:
                reused = self._client is not None and self._client.is_connected
                try:
                    await self._send_once(data, recipient, utf8)
                    return
                except Exception as exc:
                    failure = exc
            permanent, code, detail = classify(failure)
            if not permanent and reused and free_reconnect and is_disconnect(failure):
                # the server closed the idle connection we kept: reopen it, at once
                free_reconnect = False
                attempt -= 1
                logger.info("SMTP connection was closed by the server; reconnecting")
                continue
            if permanent:
                logger.warning("SMTP delivery failed for good: %s", detail)
                raise SMTPDeliveryError(
                    detail, permanent=True, smtp_code=code, attempts=attempt
                ) from failure
            if attempt >= self.max_attempts:
                logger.warning("SMTP delivery failed after %d attempts: %s", attempt, detail)
                raise SMTPDeliveryError(
                    f"{detail} (after {attempt} attempts)",
                    permanent=False,
                    smtp_code=code,
                    attempts=attempt,
                ) from failure
            delay = self.retry_delay(attempt)
            logger.info("SMTP attempt %d failed (%s); retrying in %.2fs", attempt, detail, delay)
            await self._sleep(delay)

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): ``backoff`` doubled
        per attempt, capped at ``max_backoff``, then jittered between half and all of it."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret

    async def _send_once(self, data: bytes, recipient: str, utf8: bool) -> None:
        client = self._client
        if client is None or not client.is_connected:
            self._discard()
            client = await self._connect()
        # one deadline for the transaction, not aiosmtplib's timer on each of its four replies
        # (a timer armed and cancelled per reply, on every message)
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                await _transaction(client, self.sender.addr_spec, recipient, data, utf8)
        except BaseException as exc:
            if not connection_still_good(exc):  # a deadline cut a command short: dropped too
                self._discard()
            if deadline.expired():
                raise aiosmtplib.SMTPTimeoutError(
                    f"the server did not take the message within {self.timeout:g} s"
                ) from exc
            raise

    async def _connect(self) -> aiosmtplib.SMTP:
        password = self._password.get_secret_value() if self._password is not None else None
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=password,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=self.tls == "implicit",
            start_tls=self.tls == "starttls",
            validate_certs=self.validate_certs,
            tls_context=self.ssl_context,
        )
        # connect() closes the client itself if anything (TLS, AUTH) fails
        await client.connect(timeout=self.connect_timeout)
        try:
            await _greet(client)
        except BaseException:
            client.close()
            raise
        self._client = client
        self.connections_opened += 1
        return client

    def _discard(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Say QUIT and close the connection, if one is open. The mailer can still send after:
        it opens a new connection."""
        async with self._lock:
            client, self._client = self._client, None
            if client is None:
                return
            try:
                if client.is_connected:
                    with anyio.move_on_after(self.timeout):
                        await client.quit(timeout=self.timeout)
            except (aiosmtplib.SMTPException, OSError):
                pass
            finally:
                client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO if refused) unless ``connect`` did (it does before STARTTLS or AUTH), so the
    server's extensions are known before the first MAIL; as aiosmtplib's ``send_message`` does."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()


async def _transaction(
    client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes, utf8: bool
) -> None:
    """MAIL, RCPT and DATA of one message to one recipient: what aiosmtplib's ``sendmail``
    sends, with its options and its RSET after a refusal, through aiosmtplib's own commands.

    ``sendmail`` also parses both addresses a second time before it starts (the commands parse
    each again), and passes over the whole message to normalise its line ends only to count
    its size; here both addresses were checked when the message was built, and ``data`` is
    flattened with CRLF line ends, so its length is the size (RFC 1870).

    :raises aiosmtplib.SMTPNotSupported: an address not in ASCII, and no SMTPUTF8 on the server.
    :raises aiosmtplib.SMTPResponseException: refused (``SMTPSenderRefused``,
        ``SMTPRecipientRefused``, ``SMTPDataError``); the envelope has been reset.
    """
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
    options = _mail_options(client, utf8)
    if client.supports_extension("size"):
        options.insert(0, f"SIZE={len(data)}")
    encoding = "utf-8" if utf8 else "ascii"
    try:
        await client.mail(sender, options=options, encoding=encoding, timeout=None)
        await client.rcpt(recipient, encoding=encoding, timeout=None)
        await client.data(data, timeout=None)
    except aiosmtplib.SMTPResponseException:
        # a refusal leaves a half-made envelope on the kept connection: reset it, as sendmail
        # does (a server that drops the connection instead is seen at the next message)
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset(timeout=None)
        raise


def _mail_options(client: aiosmtplib.SMTP, utf8: bool) -> list[str]:
    """The MAIL options aiosmtplib's ``send_message`` would give: ``SMTPUTF8`` for an address
    not in ASCII (refused before MAIL if the server lacks SMTPUTF8), ``BODY=8BITMIME``
    whenever the server offers 8BITMIME."""
    options = ["SMTPUTF8"] if utf8 else []
    if client.supports_extension("8BITMIME"):
        options.append("BODY=8BITMIME")
    return options


# -- headers ---------------------------------------------------------------------------------


def _unsafe(value: str) -> bool:
    """Whether ``value`` holds a line break or a control character (a tab is allowed)."""
    return any(
        (unicodedata.category(c) == "Cc" and c != "\t") or c in "\u2028\u2029" for c in value
    )


def _check_header(what: str, value: str) -> None:
    if _unsafe(value):
        raise SMTPDeliveryError(
            f"the {what} contains a line break (CR/LF) or another control character",
            permanent=True,
        )


def _recipient_header(to: str) -> AddressHeader:
    """``to`` as a To header of one bare address (``local@domain``), or a permanent error.

    Parsed with the ``email`` package's header parser rather than ``Address(addr_spec=...)``,
    which refuses a non-ASCII local part: such addresses are valid (SMTPUTF8) and aiosmtplib sends
    them when the server supports it.
    """
    _check_header("recipient address", to)
    candidate = to.strip()
    header = HEADERS("To", candidate)
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    addresses = cast(AddressHeader, header).addresses
    if (
        defects
        or len(addresses) != 1
        or addresses[0].display_name
        or addresses[0].addr_spec != candidate
        or not addresses[0].username
        or not addresses[0].domain
    ):
        raise SMTPDeliveryError(
            f"the recipient {to!r} is not one bare email address", permanent=True
        )
    return cast(AddressHeader, header)


def _sender_address(sender: str, sender_name: str | None) -> Address:
    if _unsafe(sender) or (sender_name is not None and _unsafe(sender_name)):
        raise ValueError("the sender contains a line break or a control character")
    name, addr_spec = parseaddr(sender) if "<" in sender else ("", sender.strip())
    try:
        address = Address(display_name=sender_name or name, addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"the sender {sender!r} is not an email address") from exc
    if not address.username or not address.domain:
        raise ValueError(f"the sender {sender!r} is not an email address")
    return address


def _boolean(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


__all__ = ["SMTPDeliveryError", "SMTPMailer", "TLSMode"]
