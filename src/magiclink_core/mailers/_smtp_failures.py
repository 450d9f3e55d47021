"""What a failed SMTP attempt means: permanent or worth a retry, its reply code, and whether the
kept connection is still usable (for :mod:`.smtp`; aiosmtplib's exceptions only)."""

from __future__ import annotations

import ssl

import aiosmtplib


def reply_code(exc: BaseException) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code
    return None


def classify(exc: Exception) -> tuple[bool, int | None, str]:
    """(permanent, reply code, a description for logs) of a failed attempt."""
    code = reply_code(exc)
    if code is not None:
        message = getattr(exc, "message", "")
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
            message = exc.recipients[0].message
        return code >= 500, code, f"the server replied {code} {message}".strip()
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return False, None, f"timed out ({exc})"
    if certificate_refused(exc):
        return True, None, f"the server's TLS certificate was refused ({exc})"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return False, None, f"connection failed ({exc})"
    if isinstance(exc, aiosmtplib.SMTPException):
        # no STARTTLS, no AUTH, no SMTPUTF8 on the server: a configuration problem
        return True, None, f"the server cannot do what is needed ({exc})"
    if isinstance(exc, OSError):
        return False, None, f"connection failed ({type(exc).__name__}: {exc})"
    return True, None, f"{type(exc).__name__}: {exc}"


def certificate_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, aiosmtplib.SMTPServerDisconnected)


def connection_still_good(exc: BaseException) -> bool:
    """After a refusal by reply the connection is in a known state (aiosmtplib sent RSET), except
    after 421, by which the server says it is closing; after anything else it is not."""
    code = reply_code(exc)
    return code is not None and code != 421
