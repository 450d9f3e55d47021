"""The MIME message :mod:`.smtp` sends, built with the standard :mod:`email` package and flattened
once to the bytes handed to aiosmtplib.

The message is ``multipart/alternative``: the text, then the HTML, each a quoted-printable
``text/*; charset="utf-8"`` part, under ``From``, ``To``, ``Subject``, ``Date``, ``Message-ID``,
``MIME-Version`` and ``Content-Type``. The policy is :data:`email.policy.SMTP` (CRLF line ends)
with a header registry that makes each header class once (:class:`HeaderClasses`), whose header
objects keep their folded form (:class:`FoldedOnce`).

The email package parses every header it is given and folds every header it writes, at tens of µs
each; most of a message's headers are the same for every message of a mailer, so they are parsed
once, by :class:`MessageBuilder` (the From header, ``MIME-Version: 1.0``, the multipart
``Content-Type`` with its boundary) or here (the parts' ``Content-Type`` and
``Content-Transfer-Encoding``, and recent subjects), and, being the same objects, folded once.

A message to a plain address (:meth:`MessageBuilder.as_bytes`) is not built as a tree at all:
its bytes are joined from the headers above, folded once by the email package, and the three
that change per message (``To``, ``Date``, ``Message-ID``), which for such an address are single
short lines written as the email package writes them. The tests check, over generated subjects,
bodies, senders, addresses and dates, that the bytes are the email package's bytes; anything
else (an address not in ASCII or in an unusual form, a long line to fold) takes the tree.

The boundary is chosen once per mailer, in the form the email package gives its own
(``===============<19 digits>==``), and no part is searched for it: a part is quoted-printable,
where ``=`` only ever starts an escape (``=3D``, ``=C3``) or a soft line break, so ``==`` (hence
the boundary) cannot occur in one; the part headers are fixed.
"""

from __future__ import annotations

import binascii
import random
import re
import sys
from datetime import datetime
from email.headerregistry import Address, AddressHeader, BaseHeader, HeaderRegistry
from email.message import EmailMessage as MIMEMessage
from email.message import MIMEPart
from email.policy import SMTP, Policy
from email.utils import format_datetime, make_msgid
from functools import lru_cache

from ..ports import EmailMessage


class FoldedOnce(BaseHeader):
    """A header object that keeps its folded forms: a header object never changes, so one shared
    by every message of a mailer is folded once, not once per message.

    A folded form is kept per setting the folder reads (line length, UTF-8, line separator), not
    per policy object: the generator writes each part under a policy it clones per message.
    """

    _folds: dict[tuple[int | None, bool, str], str]

    def fold(self, *, policy: Policy) -> str:
        """The header folded as :meth:`BaseHeader.fold` folds it, remembered."""
        try:
            folds = self._folds
        except AttributeError:
            folds = self._folds = {}
        key = (policy.max_line_length, getattr(policy, "utf8", False), policy.linesep)
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = super().fold(policy=policy)
        return folded


class HeaderClasses(HeaderRegistry):
    """The email package's header registry, making the class for each header name once, on
    :class:`FoldedOnce` (the registry's documented ``base_class``).

    The stock registry builds a new class (``type(...)``, tens of µs) every time it is asked for
    one: for each header set on a message and again for its count check, about 25 per message.
    The classes it builds for a name are all alike, so one is kept per name.
    """

    def __init__(self) -> None:
        super().__init__(base_class=FoldedOnce)
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        """Register ``cls`` for ``name`` headers (forgetting the class made before)."""
        super().map_to_type(name, cls)
        self._classes.pop(name.lower(), None)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


HEADERS = HeaderClasses()
"""Parses a header: ``HEADERS("To", "ann@example.org")`` is a header object."""
POLICY = SMTP.clone(header_factory=HEADERS)
""":data:`email.policy.SMTP`, with :data:`HEADERS`."""
UTF8_POLICY = POLICY.clone(utf8=True)
""":data:`email.policy.SMTPUTF8`, with :data:`HEADERS`: headers as raw UTF-8, for SMTPUTF8."""
_MIME_VERSION = HEADERS("MIME-Version", "1.0")
_QUOTED_PRINTABLE = HEADERS("Content-Transfer-Encoding", "quoted-printable")
_TEXT_TYPES = {
    subtype: HEADERS("Content-Type", f'text/{subtype}; charset="utf-8"')
    for subtype in ("plain", "html")
}


class MessageBuilder:
    """Builds the messages of one sender: what every message shares is parsed here, once.

    :param sender: the From address.
    """

    def __init__(self, sender: Address) -> None:
        self.domain = sender.domain
        self.from_header = HEADERS("From", sender)
        boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="  # noqa: S311
        self.content_type = HEADERS("Content-Type", f'multipart/alternative; boundary="{boundary}"')
        # what as_bytes writes around the per-message headers and the parts
        self._ascii_sender = sender.addr_spec.isascii()
        self._from = _folded("From", self.from_header)
        self._mime = _folded("MIME-Version", _MIME_VERSION) + _folded(
            "Content-Type", self.content_type
        )
        # the blank line ending the headers, or a part's last line break, then a boundary
        self._delimiter = b"\r\n--" + boundary.encode("ascii") + b"\r\n"
        self._end = b"\r\n--" + boundary.encode("ascii") + b"--\r\n"

    def message_id(self) -> str:
        """A new ``Message-ID`` value, on the sender's domain."""
        return make_msgid(domain=self.domain)

    def build(
        self, message: EmailMessage, to: AddressHeader, now: datetime, message_id: str
    ) -> MIMEMessage:
        """The MIME message for ``message``, to ``to`` (a parsed To header), dated ``now``.

        The subject is not checked here: the caller refuses one with a line break first.
        """
        mime = MIMEMessage(policy=POLICY)
        # a header object is set as it is (the policy keeps one given for its own name)
        mime["From"] = self.from_header
        mime["To"] = to
        mime["Subject"] = subject_header(message.subject)
        mime["Date"] = now  # the Date header formats a datetime itself (no string to parse)
        mime["Message-ID"] = message_id
        mime["MIME-Version"] = _MIME_VERSION
        mime["Content-Type"] = self.content_type
        # parts are MIMEPart, which the email package documents for sub-parts (no MIME-Version
        # of their own); typeshed's attach() wants the message's own class
        mime.attach(text_part(message.text, "plain"))  # type: ignore[arg-type]
        mime.attach(text_part(message.html, "html"))  # type: ignore[arg-type]
        return mime

    def as_bytes(
        self, message: EmailMessage, recipient: str, now: datetime, message_id: str
    ) -> bytes | None:
        """What ``flatten(build(...), utf8=False)`` gives for ``message`` to ``recipient``, a
        plain ``local@domain`` in ASCII, without building the tree; None when the recipient is
        not such an address, or a per-message header would need folding or UTF-8 (then
        :meth:`build` is the way).

        A plain address is its own To header: the email package parses it to the same text and
        writes it unchanged on one line, as it writes the Date of ``now`` and ``message_id``.
        The subject is not checked here: the caller refuses one with a line break first.
        """
        date = format_datetime(now)
        if (
            not self._ascii_sender
            or len(recipient) > _LONGEST_TO
            or len(message_id) > _LONGEST_MESSAGE_ID
            or _PLAIN_ADDRESS.fullmatch(recipient) is None
        ):
            return None
        return b"".join(
            (
                self._from,
                b"To: " + recipient.encode("ascii") + b"\r\n",
                _subject_line(message.subject),
                b"Date: " + date.encode("ascii") + b"\r\n",
                b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
                self._mime,
                self._delimiter,
                _PART_HEADS["plain"],
                quoted_printable(message.text).replace(b"\n", b"\r\n"),
                self._delimiter,
                _PART_HEADS["html"],
                quoted_printable(message.html).replace(b"\n", b"\r\n"),
                self._end,
            )
        )


_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)
"""A dot-atom local part and a domain of letters, digits and hyphens, all ASCII: an address the
email package writes as it is given."""
# the longest per-message values that keep their header within the 78 characters of a line (a
# Date is always 31 characters)
_LONGEST_TO = 78 - len("To: ")
_LONGEST_MESSAGE_ID = 78 - len("Message-ID: ")


def _folded(name: str, header: BaseHeader) -> bytes:
    """``header`` as the generator writes it under :data:`POLICY`: folded, CRLF-ended."""
    return POLICY.fold_binary(name, header)


@lru_cache(maxsize=64)
def _subject_line(subject: str) -> bytes:
    return _folded("Subject", subject_header(subject))


@lru_cache(maxsize=64)
def subject_header(subject: str) -> BaseHeader:
    """The Subject header of ``subject``, parsed (and, once written, folded) once: subjects come
    from templates, one for many messages."""
    return HEADERS("Subject", subject)


def text_part(body: str, subtype: str) -> MIMEPart:
    """A ``text/<subtype>; charset="utf-8"`` part of ``body``, quoted-printable, with its two
    headers parsed once for every message.

    What ``MIMEPart.set_content(body, subtype=subtype, cte="quoted-printable")`` makes, but for
    the encoder: the body is UTF-8 with its lines ended by LF, as ``set_content`` makes it, then
    encoded by the standard library's C encoder (``binascii.b2a_qp``, the one :mod:`quopri`
    uses) instead of the email package's Python one, which takes about four times as long on a
    sign-in email's HTML and writes lines up to the policy's 78 characters where RFC 2045 allows
    76. Both decode to the same text (the tests check it).

    ``set_content`` also parses its ``Content-Type`` three times (set, charset added, replaced)
    and ``Content-Transfer-Encoding`` once, per part. Quoted-printable said outright: left to
    choose, the email package encodes a body with long lines both ways (quoted-printable and
    base64) to keep the shorter; and the boundary needs it.
    """
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = _TEXT_TYPES[subtype]
    part["Content-Transfer-Encoding"] = _QUOTED_PRINTABLE
    part.set_payload(quoted_printable(body).decode("ascii"))
    return part


def quoted_printable(body: str) -> bytes:
    """``body`` in UTF-8, its lines ended by LF, quoted-printable (lines of at most 76)."""
    lines = body.encode("utf-8").splitlines()
    # istext: a line break stays a line break; a lone "." on a line is encoded as well
    encoded = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True)
    # the C encoder writes a space or tab that ends a line as "=20" or "=09" without checking
    # the line's length: a line of 74 characters and a space comes out 77 long
    if b"=20\n" in encoded or b"=09\n" in encoded:
        encoded = b"\n".join(_within_76(line) for line in encoded.split(b"\n"))
    return encoded


def _within_76(line: bytes) -> bytes:
    """An encoded line cut by soft line breaks ("=" at the end) into lines of at most 76, never
    inside an escape ("=XX")."""
    pieces = []
    while len(line) > 76:
        cut = 75  # and the "=" of the soft break makes 76
        if line[cut - 1 : cut] == b"=":
            cut -= 1
        elif line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        pieces.append(line[:cut] + b"=")
        line = line[cut:]
    pieces.append(line)
    return b"\n".join(pieces)


_PART_HEADS = {
    subtype: _folded("Content-Type", header)
    + _folded("Content-Transfer-Encoding", _QUOTED_PRINTABLE)
    + b"\r\n"
    for subtype, header in _TEXT_TYPES.items()
}
"""The head of each part, and the blank line after it, as the generator writes them."""


def flatten(mime: MIMEMessage, *, utf8: bool) -> bytes:
    """``mime`` as the bytes of DATA, as aiosmtplib's ``send_message`` would flatten it: under
    :data:`UTF8_POLICY` for an SMTPUTF8 transaction (an address not in ASCII), else
    :data:`POLICY` (non-ASCII header text as encoded words)."""
    return mime.as_bytes(policy=UTF8_POLICY if utf8 else POLICY)
