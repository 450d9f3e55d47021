"""The SMTP mailer's MIME message: what it shares between messages to save CPU changes nothing a
reader sees: the parts carry what ``set_content``'s parts carry (encoded by the C encoder, in lines
RFC 2045 allows), the headers fold as the stock ones do, and the whole message is, header for
header and text for text, what the email package's own ``set_content``/``add_alternative`` would
send."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage as MIMEMessage
from email.message import MIMEPart
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime, make_msgid

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import example, given
from hypothesis import strategies as st

from magiclink_core.mailers._smtp_message import HEADERS, POLICY, UTF8_POLICY, flatten, text_part
from magiclink_core.mailers.smtp import SMTPMailer, _recipient_header
from magiclink_core.ports import EmailMessage
from magiclink_core.testing import FakeClock

# bodies as templates make them, and worse: any character, CR/LF mixes, long lines, trailing
# spaces, dots and "From " at line starts, "=" runs that look like a boundary (no lone surrogate:
# UTF-8 cannot encode one, set_content refuses it as text_part does)
PIECES = st.sampled_from(["\r\n", "\n", "\r", " ", "\t", "=", "==", ".", "From ", "x" * 90])
BODIES = st.lists(st.one_of(st.characters(exclude_categories=["Cs"]), PIECES), max_size=200).map(
    "".join
)


def _head_and_text(part: MIMEPart | MIMEMessage) -> tuple[list[tuple[str, str]], bytes]:
    """What a reader of ``part`` gets: its headers, and its body decoded (quoted-printable)."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return [(name, str(value)) for name, value in part.items()], payload


@given(BODIES, st.sampled_from(["plain", "html"]))
@example("x" * 74 + " ", "html")
@example("x" * 73 + "\t\n" + "é" * 30 + " ", "plain")
def test_a_part_carries_what_the_one_set_content_makes_carries(body: str, subtype: str) -> None:
    stock = MIMEPart(policy=SMTP)
    stock.set_content(body, subtype=subtype, cte="quoted-printable")
    ours = text_part(body, subtype)
    assert _head_and_text(ours) == _head_and_text(stock)
    # as sent, and read back by a mail client
    assert _head_and_text(_sent(ours, POLICY)) == _head_and_text(_sent(stock, SMTP))


def _sent(part: MIMEPart, policy: Policy) -> MIMEMessage:
    parsed = message_from_bytes(part.as_bytes(policy=policy), policy=SMTP)
    assert isinstance(parsed, MIMEMessage)
    return parsed


@given(BODIES)
@example("x" * 74 + " ")  # a space ending a line, encoded "=20" past the 76th character
@example("é" * 24 + "x" * 2 + "\t\r\nnext")
def test_a_part_is_in_lines_rfc_2045_allows(body: str) -> None:
    # ASCII, and at most 76 characters a line (the email package's own encoder writes 78)
    sent = text_part(body, "html").as_bytes(policy=POLICY)
    _, _, encoded = sent.partition(b"\r\n\r\n")
    assert encoded.isascii()
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    # no bare CR or LF: every line ends with CRLF, as SMTP's DATA needs
    assert b"\r" not in encoded.replace(b"\r\n", b"") and b"\n" not in encoded.replace(b"\r\n", b"")


@given(BODIES)
def test_no_part_can_hold_the_boundary(body: str) -> None:
    # the boundary holds "==", which quoted-printable never writes
    assert "==" not in text_part(body, "plain").get_payload()


HEADER_VALUES = [
    ("Subject", "Sign in to Example"),
    ("Subject", "Connexion à Été — ✓ " + "mot " * 30),
    ("From", 'Éxample Ltd, the "best" <noreply@example.com>'),
    ("To", "josé@exämple.org"),
    ("Content-Type", 'multipart/alternative; boundary="===============1234567890123456789=="'),
    ("Content-Type", 'text/html; charset="utf-8"'),
    ("MIME-Version", "1.0"),
]


@pytest.mark.parametrize(("name", "value"), HEADER_VALUES)
def test_a_header_folds_as_the_stock_one_every_time_under_each_policy(
    name: str, value: str
) -> None:
    stock = HeaderRegistry()(name, value)
    ours = HEADERS(name, value)
    narrow = SMTP.clone(max_line_length=30)
    for _ in range(2):  # the second time from what was kept
        assert ours.fold(policy=POLICY) == stock.fold(policy=SMTP)
        assert ours.fold(policy=UTF8_POLICY) == stock.fold(policy=SMTPUTF8)
        assert ours.fold(policy=narrow) == stock.fold(policy=narrow)


def _stock(mailer: SMTPMailer, message: EmailMessage, clock: FakeClock, utf8: bool) -> bytes:
    """The message as the mailer used to build it, and aiosmtplib's send_message to flatten it."""
    mime = MIMEMessage(policy=SMTP)
    mime["From"] = mailer.sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(clock.now())
    mime["Message-ID"] = make_msgid(domain=mailer.sender.domain)
    mime.set_content(message.text, cte="quoted-printable")
    mime.add_alternative(message.html, subtype="html", cte="quoted-printable")
    return flatten_message(mime, utf8=utf8)


def _read(data: bytes) -> list[tuple[list[tuple[str, str]], bytes]]:
    """A flattened message as a mail client reads it: the message's headers, then each part's
    headers and decoded text (the boundary and the Message-ID, chosen at random, left out)."""
    parsed = message_from_bytes(data, policy=SMTP)
    assert isinstance(parsed, MIMEMessage)
    head = [
        (name, re.sub(r"=+\d{19}==", "BOUNDARY", str(value)))
        for name, value in parsed.items()
        if name != "Message-ID"
    ]
    parts = []
    for part in parsed.iter_parts():
        headers, text = _head_and_text(part)
        # add_alternative made the HTML part an EmailMessage, with a MIME-Version of its own
        parts.append(([h for h in headers if h[0] != "MIME-Version"], text))
    return [(head, b""), *parts]


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        (
            "Example <noreply@example.com>",
            EmailMessage(
                to="ann@example.org", subject="Sign in", text="Hi\nlink", html="<p>link</p>"
            ),
        ),
        (
            "Éxample <noreply@example.com>",
            EmailMessage(
                to="ann@example.org",
                subject="Connexion à Été — ✓ " + "mot " * 30,
                text="Bonjour ✓ " + "x" * 200 + "\r\n=.\n.\nFrom x",
                html="<p>Été</p>" + "y" * 200,
            ),
        ),
        (
            '"Weird, Name" <noreply@example.com>',
            EmailMessage(to="josé@exämple.org", subject="Hi ✓", text="t", html="h"),
        ),
    ],
)
def test_the_message_is_the_one_the_email_package_builds(
    sender: str, message: EmailMessage
) -> None:
    clock = FakeClock()
    mailer = SMTPMailer(sender=sender, clock=clock, local_hostname="client.test")
    to = _recipient_header(message.to)
    utf8 = not (mailer.sender.addr_spec + message.to).isascii()
    for _ in range(2):  # the second from the headers kept by the first
        ours = flatten(mailer.build_message(message), utf8=utf8)
        assert _read(ours) == _read(_stock(mailer, message, clock, utf8))
        assert all(len(line) <= 78 for line in ours.split(b"\r\n"))
    assert to.addresses[0].addr_spec == message.to


# what MessageBuilder.as_bytes writes itself: dot-atom local parts of every character atext
# allows, domains of letters, digits and hyphens, of any length (long ones must fall back)
ATEXT = "aZ09!#$%&'*+/=?^_`{|}~-"
DOT_ATOMS = st.lists(st.text(alphabet=ATEXT, min_size=1, max_size=20), min_size=1, max_size=4)
DOMAINS = st.lists(st.text(alphabet="az09-", min_size=1, max_size=20), min_size=1, max_size=4)
PLAIN_ADDRESSES = st.builds(
    lambda local, domain: ".".join(local) + "@" + ".".join(domain), DOT_ATOMS, DOMAINS
)
SAFE_TEXT = st.text(
    st.characters(exclude_categories=["Cc", "Cs"], exclude_characters="\u2028\u2029"),
    max_size=120,
)
DATES = st.datetimes(
    min_value=datetime(1970, 1, 2),
    timezones=st.sampled_from(
        [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


@given(
    sender=PLAIN_ADDRESSES,
    sender_name=SAFE_TEXT,
    recipient=PLAIN_ADDRESSES,
    subject=SAFE_TEXT,
    text=BODIES,
    html=BODIES,
    now=DATES,
)
def test_a_message_to_a_plain_address_is_written_as_the_email_package_writes_it(
    sender: str, sender_name: str, recipient: str, subject: str, text: str, html: str, now: datetime
) -> None:
    mailer = SMTPMailer(sender=sender, sender_name=sender_name or None)
    builder = mailer._builder
    message = EmailMessage(to=recipient, subject=subject, text=text, html=html)
    message_id = builder.message_id()
    written = builder.as_bytes(message, recipient, now, message_id)
    built = flatten(
        builder.build(message, _recipient_header(recipient), now, message_id), utf8=False
    )
    if written is not None:
        assert written == built
    # the common case takes this way: nothing long enough to fold
    if len(recipient) <= 60 and len(message_id) <= 60:
        assert written is not None


@pytest.mark.parametrize(
    "recipient",
    [
        "josé@example.org",  # SMTPUTF8: the email package writes it as UTF-8
        "ann@exämple.org",
        "ann@example.org ",  # the email package strips, and checks it is then one address
        "Ann <ann@example.org>",
        '"ann smith"@example.org',
        "ann..smith@example.org",
        ".ann@example.org",
        "ann@example.org\r\nBcc: eve@example.org",
        "ann@[127.0.0.1]",
        "a" * 70 + "@example.org",  # a To line past 78 characters
    ],
)
def test_any_other_recipient_is_left_to_the_email_package(recipient: str) -> None:
    builder = SMTPMailer(sender="noreply@example.org")._builder
    message = EmailMessage(to=recipient, subject="Hi", text="t", html="h")
    assert builder.as_bytes(message, recipient, datetime.now(UTC), builder.message_id()) is None


def test_a_sender_not_in_ascii_is_left_to_the_email_package() -> None:
    builder = SMTPMailer(sender="noreply@exämple.org")._builder
    message = EmailMessage(to="ann@example.org", subject="Hi", text="t", html="h")
    assert builder.as_bytes(message, message.to, datetime.now(UTC), builder.message_id()) is None
