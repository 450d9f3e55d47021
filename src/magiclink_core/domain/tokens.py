"""Token crypto: random bearer tokens, their keyed digests, and key rotation.

A token is ``ml<purpose letter>1_`` + unpadded url-safe base64 of 32 random bytes:

    prefix   4 chars   "mll1_" (link), "mls1_" (session), "mlc1_" (client); the digit is the format
    body    43 chars   256 bits from ``secrets``

Only the keyed digest is stored: HMAC-SHA256 under a key derived per purpose (HKDF, itsdangerous's
"one secret, a salt per purpose") from each configured secret. The first secret signs; every
secret verifies, so a rotated-out secret keeps old links and sessions working until they expire.
Lookups are by digest, so the comparison is the storage's index equality on a keyed hash; where a
digest is compared in memory, ``hmac.compare_digest`` does it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Final, TypeGuard

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_BYTES = 32
ID_BYTES = 16  # a record id's random bits: 128
_CODE_BYTES = 8  # the random bits a numeric code is drawn from: 64
_BODY_CHARS = 43  # ceil(32 * 4 / 3) without padding


class TokenPurpose(StrEnum):
    LINK = "l"
    SESSION = "s"
    CLIENT = "c"
    EMAIL_CODE = "e"  # not a token: keys the digests of emailed codes (see Keyring.code_digest)
    PSEUDO_ID = "p"  # not a token: keys a sign-in's factor id (Keyring.pseudo_id)


# the purposes a link click and a session check name, read once: Python 3.11 reads an enum
# class's member through ``EnumType.__getattr__``, slowly (see flows.COMPLETE)
LINK: Final = TokenPurpose.LINK
SESSION: Final = TokenPurpose.SESSION


_TOKEN_RE = re.compile(r"^ml([lsc])1_([A-Za-z0-9_-]{43})$")
# 43 base64 characters carry 258 bits: the last character's 2 spare bits must be zero
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PREFIXES = {purpose: f"ml{purpose.value}1_" for purpose in TokenPurpose}


def new_token(purpose: TokenPurpose) -> str:
    """A fresh 256-bit bearer token for ``purpose`` (``secrets.token_urlsafe(32)``, whose source
    is ``os.urandom``, spelt out: the same bytes and alphabet, fewer calls)."""
    return _token_of(os.urandom(TOKEN_BYTES), purpose)


# A token minted with a record id or a code draws their bytes in the same ``os.urandom`` call:
# each call is a system call, and one of 40 or 48 bytes costs less than two (0.57 against 0.88
# µs, measured on a benchmark machine); the bytes of one call are as independent as two calls'.


def new_token_and_id(purpose: TokenPurpose, prefix: str) -> tuple[str, str]:
    """A fresh token for ``purpose`` and a fresh record id (as :func:`new_id` makes), drawn in
    one call: a session minted with its token."""
    drawn = os.urandom(TOKEN_BYTES + ID_BYTES)
    return _token_of(drawn[:TOKEN_BYTES], purpose), f"{prefix}_{drawn[TOKEN_BYTES:].hex()}"


def new_token_and_code(purpose: TokenPurpose, digits: int) -> tuple[str, str]:
    """A fresh token for ``purpose`` and a fresh numeric code (as :func:`new_numeric_code`
    makes), drawn in one call: a link minted with its confirmation code."""
    drawn = os.urandom(TOKEN_BYTES + _CODE_BYTES)
    code = numeric_code(drawn[TOKEN_BYTES:], digits)
    return _token_of(drawn[:TOKEN_BYTES], purpose), (
        code if code is not None else new_numeric_code(digits)
    )


def _token_of(drawn: bytes, purpose: TokenPurpose) -> str:
    body = binascii.b2a_base64(drawn, newline=False).translate(_URLSAFE)
    return _PREFIXES[purpose] + body[:-1].decode()  # 44 characters, the last one "="


def is_text(value: object, *, max_chars: int) -> TypeGuard[str]:
    """Whether ``value`` is a string of at most ``max_chars`` that UTF-8 can carry (no lone
    surrogates, which no digest, answer, email or database could encode)."""
    if not isinstance(value, str) or len(value) > max_chars:
        return False
    return value.isascii() or not any("\ud800" <= ch <= "\udfff" for ch in value)


def well_formed(token: object, purpose: TokenPurpose) -> TypeGuard[str]:
    """Whether ``token`` is spelled as a token of ``purpose``: ``ml``, the purpose, ``1_`` and 43
    base64url characters in their one canonical spelling. Cheap rejection of junk before any
    digest or storage read."""
    if not isinstance(token, str) or len(token) != 5 + _BODY_CHARS:
        return False
    # a non-canonical last character would give one token two spellings
    return (
        token.startswith(_PREFIXES[purpose])
        and token[-1] in _CANONICAL_LAST
        and _TOKEN_RE.match(token) is not None
    )


def parse_token(token: object, purpose: TokenPurpose) -> bytes | None:
    """The token's random bytes, or None when it is not a well-formed token of ``purpose``
    (or not a string at all)."""
    if not well_formed(token, purpose):
        return None
    return base64.urlsafe_b64decode(token[5:] + "=")


def is_link_token(token: str) -> bool:
    """Whether ``token`` is spelled like a link's token (ASCII, of the link's purpose): what a
    web layer checks before it carries a token anywhere, a header or a cookie included."""
    return well_formed(token, TokenPurpose.LINK)


class Keyring:
    """Per-purpose HMAC keys derived from the configured secrets, newest first."""

    __slots__ = ("_keys",)

    def __init__(self, secrets_newest_first: Sequence[bytes]) -> None:
        if not secrets_newest_first:
            raise ValueError("at least one secret is required")
        self._keys: dict[TokenPurpose, tuple[_Mac, ...]] = {
            purpose: tuple(_Mac(_derive(secret, purpose)) for secret in secrets_newest_first)
            for purpose in TokenPurpose
        }

    def __repr__(self) -> str:
        return f"Keyring(<{len(self._keys[TokenPurpose.LINK])} secrets>)"

    def digest(self, token: str, purpose: TokenPurpose) -> str:
        """The digest to store for a token (under the newest key)."""
        return self._keys[purpose][0].hexdigest(token.encode())

    def candidate_digests(self, token: str, purpose: TokenPurpose) -> list[str]:
        """Digests of ``token`` under every key, newest first; empty for a malformed token."""
        if not well_formed(token, purpose):
            return []
        message = token.encode()
        return [key.hexdigest(message) for key in self._keys[purpose]]

    def code_digest(self, binding: str, code: str) -> str:
        """The digest to store for an emailed code (under the newest key). ``binding`` ties it to
        one verification (its link digest), so equal codes of two emails have unequal digests."""
        return _hmac(self._keys[TokenPurpose.EMAIL_CODE][0], f"{binding}:{code}")

    def code_digests(self, binding: str, code: str) -> list[str]:
        """Digests of a typed code under every key, newest first (a rotated secret keeps the
        codes of emails already sent working)."""
        return [_hmac(key, f"{binding}:{code}") for key in self._keys[TokenPurpose.EMAIL_CODE]]

    def pseudo_id(self, email: str, prefix: str = "idn") -> str:
        """A stable id of ``email`` shaped like a record's (``idn_`` and 32 hex digits): the
        same on every request, unguessable without the secret. With enumeration protection,
        every sign-in's ``email_address_id``, so it does not tell whether the address has an
        account."""
        return f"{prefix}_{_hmac(self._keys[TokenPurpose.PSEUDO_ID][0], email)[:32]}"


def _derive(secret: bytes, purpose: TokenPurpose) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"magiclink/v1",
        info=f"magiclink token digest: {purpose.name.lower()}".encode(),
    ).derive(secret)


class _Mac:
    """HMAC-SHA256 under one key (RFC 2104), its two padded key blocks hashed once: each digest
    then costs two copies of a hash state instead of setting the key up again (the same digest as
    ``hmac.new(key, message, hashlib.sha256)``)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_SHA256_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac(key: _Mac, token: str) -> str:
    return key.hexdigest(token.encode())


def new_id(prefix: str) -> str:
    """A public record id such as ``sia_2b8f…``: 128 random bits, not a secret."""
    return f"{prefix}_{os.urandom(ID_BYTES).hex()}"


def new_numeric_code(digits: int) -> str:
    """A short numeric code: the confirmation code (shown by the starting device, typed on the
    clicking one) or the email code (in the email, typed on the starting device), uniform over
    all ``10**digits`` codes.

    What ``secrets.randbelow`` does, in one call: 64 bits from ``os.urandom``, drawn again in
    the rare case (under one in a billion for any length a setting allows) that they fall past the
    last whole multiple of ``10**digits``, so no code is likelier than another."""
    if 10**digits > 1 << 63:
        return f"{secrets.randbelow(10**digits):0{digits}d}"
    while (code := numeric_code(os.urandom(_CODE_BYTES), digits)) is None:
        pass
    return code


_CODE_SEPARATORS = re.compile(r"[\s-]+")


def typed_code(text: str) -> str:
    """A numeric code as a person typed it, without the spaces and dashes they put in reading
    it out ("394 526", "394-526"): what is compared, for both codes (the one from the email and
    the confirmation code). Typing it spaced out is not a wrong guess."""
    return _CODE_SEPARATORS.sub("", text)


def numeric_code(drawn: bytes, digits: int) -> str | None:
    """The code of ``digits`` digits that 8 random bytes make, or None when they cannot make
    one without bias (they fall past the last whole multiple of ``10**digits``, or the codes are
    too many for 64 bits): draw again."""
    codes = 10**digits
    if len(drawn) != _CODE_BYTES or codes > 1 << 63:
        return None
    value = int.from_bytes(drawn)
    if value >= (1 << 64) - (1 << 64) % codes:
        return None
    return f"{value % codes:0{digits}d}"


_PERCENT = "%(?:25)*"
"""A ``%`` in a text quoted once (``%5F``) or again (``%255F``, its ``%`` quoted as ``%25``)."""

TOKEN_IN_TEXT = re.compile(
    r"""
    (?: m (?<!\wm) | %% 6[Dd] )     # "m" not glued to a word (a \b, checked after the "m" so the
                                   # search skips at C speed to the next "m" or "%"). Each %%
                                   # stands for _PERCENT
    (?: l | %% 6[Cc] )
    (?P<purpose> [lsc] | %% 6[Cc] | %% 73 | %% 63 )
    (?: 1 | %% 31 )
    (?: _ | %% 5[Ff] )
    (?: [A-Za-z0-9_-]              # 43 body characters of url-safe base64, each maybe encoded:
      | %% (?: 2[Dd] | 3[0-9] | [46][1-9A-Fa-f] | [57][0-9Aa] | 5[Ff] )  # - 0-9 A-Z a-z _
    ){43}
    """.replace("%%", _PERCENT),
    re.VERBOSE,
)
"""A token anywhere in a text (a URL, a log line), for :func:`redact_tokens`: as minted, or with
any of its characters percent-encoded (the landing decodes the query, so it accepts those too),
once or more (a proxy or a log that quotes the URL again: decoding the line as often would give
the token back)."""


def _redacted(found: re.Match[str]) -> str:
    purpose = found["purpose"]
    if len(purpose) > 1:  # percent-encoded: its last two characters are the hex
        purpose = chr(int(purpose[-2:], 16))
    return f"ml{purpose}1_[redacted]"


def redact_tokens(text: str) -> str:
    """``text`` with every token's secret body replaced: ``mll1_[redacted]`` keeps its kind (a
    percent-encoded token is written plainly, its body redacted just the same)."""
    return TOKEN_IN_TEXT.sub(_redacted, text)
