"""The typed errors of magiclink.

Every error carries a stable ``code`` (one :class:`ErrorCode`) and a ``status_hint``, the HTTP
status a web layer should answer with, as class data in the manner of h11's
``error_status_hint``. The web layer reads both and decides what to reveal; it keeps no table of
its own. Errors are plain data set at construction: nothing changes them after they are raised.
The base classes cannot be raised directly.

    AuthError (abstract)
    ├── MagicLinkError (abstract)     the link did not work; ``redirect_url`` set for its owner
    │   ├── MagicLinkExpiredError     expired, 410; carries ``expired_at``
    │   ├── MagicLinkFailedError      failed, 422 (used, superseded, unknown, tampered with)
    │   │   └── TooManyConfirmationCodesError  disabled by wrong codes; carries the ``kind``
    │   └── ClientMismatchError       client_mismatch, 403 (policy ``deny``)
    ├── ConfirmationCodeError         confirmation_code_incorrect, 422; ``attempts_left``
    ├── EmailCodeError                email_code_incorrect, 422; ``attempts_left``
    ├── InvalidEmailError             invalid_email_address, 422
    ├── InvalidRedirectError          redirect_url_not_allowed, 422
    ├── InvalidRequestError           invalid_request, 400 (a malformed argument)
    ├── UnauthenticatedError          unauthenticated, 401
    ├── NotAllowedError               not_allowed, 403 (a veto hook refused)
    ├── ReverificationRequiredError   reverification_required, 403 (sign in again first)
    ├── NotFoundError                 not_found, 404 (or not yours: the two are not told apart)
    ├── InvalidStateError             invalid_state, 409 (the attempt cannot do that now)
    │   └── LinkStillWorksError       a resend of a link that works, or whose newer one does
    ├── ConflictError                 conflict, 409 (a concurrent change won; nothing written)
    ├── IdentifierExistsError         identifier_exists, 422 (enumeration protection off)
    ├── IdentifierNotFoundError       identifier_not_found, 422 (enumeration protection off)
    ├── RateLimitedError              rate_limited, 429; ``retry_after``
    ├── MailDeliveryError             mail_delivery_failed, 502; ``permanent``
    └── StorageUnavailableError       storage_unavailable, 503

A web layer adds its own leaves (a refused cross-site request, a body too large) under
:class:`AuthError` with codes from the same enum.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from .models import AttemptKind


class ErrorCode(StrEnum):
    """Every error code magiclink answers with; stable, part of the API."""

    # the link did not work (the guide's MagicLinkErrorCode)
    EXPIRED = "expired"
    FAILED = "failed"
    CLIENT_MISMATCH = "client_mismatch"
    # the flows
    CONFIRMATION_CODE_INCORRECT = "confirmation_code_incorrect"
    EMAIL_CODE_INCORRECT = "email_code_incorrect"
    INVALID_EMAIL_ADDRESS = "invalid_email_address"
    REDIRECT_URL_NOT_ALLOWED = "redirect_url_not_allowed"
    INVALID_REQUEST = "invalid_request"
    UNAUTHENTICATED = "unauthenticated"
    NOT_ALLOWED = "not_allowed"
    REVERIFICATION_REQUIRED = "reverification_required"
    NOT_FOUND = "not_found"
    INVALID_STATE = "invalid_state"
    CONFLICT = "conflict"
    IDENTIFIER_EXISTS = "identifier_exists"
    IDENTIFIER_NOT_FOUND = "identifier_not_found"
    RATE_LIMITED = "rate_limited"
    MAIL_DELIVERY_FAILED = "mail_delivery_failed"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    # the HTTP layer's own refusals
    CSRF_FAILED = "csrf_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


MagicLinkErrorCode = ErrorCode
"""The guide's name for the codes of a link that did not work (``MagicLinkErrorCode.EXPIRED``)."""


class AuthError(Exception):
    """Base of every magiclink error; abstract, raise a subclass."""

    code: ClassVar[ErrorCode]
    status_hint: ClassVar[int]
    default_message: ClassVar[str] = ""

    def __init__(self, message: str | None = None, *, long_message: str | None = None) -> None:
        if not hasattr(type(self), "code"):
            raise TypeError(f"{type(self).__name__} is abstract: raise one of its subclasses")
        self.message = message or self.default_message
        self.long_message = long_message or self.message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class MagicLinkError(AuthError):
    """A magic link did not work: expired, already used, unknown, tampered with, or clicked by a
    client the cross-device policy refuses. Abstract; ``code`` says which.

    ``redirect_url`` is where the link's attempt wanted to go, set only when the client that
    asked for the link clicked it: the web layer may send it back to the app with the status
    (so the app can say what happened and offer to resend); anyone else gets a generic page.
    """

    default_message = "This link is invalid or has already been used."

    def __init__(
        self,
        message: str | None = None,
        *,
        long_message: str | None = None,
        redirect_url: str | None = None,
    ) -> None:
        self.redirect_url = redirect_url
        super().__init__(message, long_message=long_message)


class MagicLinkExpiredError(MagicLinkError):
    """The link's time ran out; ``expired_at`` says when."""

    code = ErrorCode.EXPIRED
    status_hint = 410

    def __init__(
        self, expired_at: datetime, *, redirect_url: str | None = None, what: str = "link"
    ) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"This {what} has expired.",
            long_message=f"This {what} expired at {expired_at:%Y-%m-%d %H:%M} UTC. "
            "Ask for a new email.",
            redirect_url=redirect_url,
        )


class MagicLinkFailedError(MagicLinkError):
    """The link was used, replaced by a newer one, disabled, or never valid."""

    code = ErrorCode.FAILED
    status_hint = 422


class TooManyConfirmationCodesError(MagicLinkFailedError):
    """Too many wrong codes were typed, so the link no longer works: confirmation codes on the
    device that opened the link, or the email's own code on the device that asked (the link
    of that email then says so wherever it is opened). Still ``failed`` (the guide's code);
    ``kind`` says what the attempt was, so a page can say where to start again (signing up
    again for a sign-up)."""

    def __init__(self, kind: AttemptKind, *, redirect_url: str | None = None) -> None:
        self.kind = kind
        super().__init__(
            "Too many wrong codes: this link no longer works.",
            long_message="Too many wrong codes were typed, so this link no longer works. Ask "
            f"for a new one on the device where you are {_DOING[kind]}.",
            redirect_url=redirect_url,
        )


_DOING = {
    AttemptKind.SIGN_UP: "signing up",
    AttemptKind.SIGN_IN: "signing in",
    AttemptKind.EMAIL_ADDRESS: "adding this address",
}


class ClientMismatchError(MagicLinkError):
    """Policy ``deny``: the link was opened by a client other than the one that asked."""

    code = ErrorCode.CLIENT_MISMATCH
    status_hint = 403
    default_message = "Open this link on the device where you asked for it."


class ConfirmationCodeError(AuthError):
    """The confirmation code typed on the clicking device was wrong; some tries remain."""

    code = ErrorCode.CONFIRMATION_CODE_INCORRECT
    status_hint = 422
    default_message = "That code does not match the one shown on the device that asked."

    def __init__(self, attempts_left: int) -> None:
        self.attempts_left = attempts_left
        super().__init__(
            long_message=f"That code is not the one shown on the other device. "
            f"{attempts_left} {'try' if attempts_left == 1 else 'tries'} left."
        )


class EmailCodeError(AuthError):
    """The code from the email, typed on the starting device, was wrong; some tries remain."""

    code = ErrorCode.EMAIL_CODE_INCORRECT
    status_hint = 422
    default_message = "That is not the code from the email."

    def __init__(self, attempts_left: int) -> None:
        self.attempts_left = attempts_left
        super().__init__(
            long_message=f"That is not the code we emailed. "
            f"{attempts_left} {'try' if attempts_left == 1 else 'tries'} left."
        )


class InvalidEmailError(AuthError):
    """The address is not one mail can be sent to (syntax, length, or no such domain when
    deliverability is checked)."""

    code = ErrorCode.INVALID_EMAIL_ADDRESS
    status_hint = 422
    default_message = "That is not a valid email address."


class InvalidRedirectError(AuthError):
    """A redirect target off the app's own and allowlisted origins, or malformed."""

    code = ErrorCode.REDIRECT_URL_NOT_ALLOWED
    status_hint = 422
    default_message = "That redirect URL is not allowed."


class InvalidRequestError(AuthError):
    """A malformed argument: missing, of the wrong type, or out of range."""

    code = ErrorCode.INVALID_REQUEST
    status_hint = 400
    default_message = "The request is not valid."


class UnauthenticatedError(AuthError):
    """The call needs a live session and has none."""

    code = ErrorCode.UNAUTHENTICATED
    status_hint = 401
    default_message = "You need to be signed in."


class NotAllowedError(AuthError):
    """The app refused (a veto hook returned False or raised it)."""

    code = ErrorCode.NOT_ALLOWED
    status_hint = 403
    default_message = "You are not allowed to do that."


class ReverificationRequiredError(AuthError):
    """An account change (adding, removing or making primary an address) needs a recent
    sign-in: the session is older than ``Settings.reverification_window``. Signing in again,
    with a fresh link or code to one of the user's verified addresses, makes a recent one."""

    code = ErrorCode.REVERIFICATION_REQUIRED
    status_hint = 403
    default_message = "Please confirm it's you."

    def __init__(self, window: timedelta) -> None:
        self.window = window
        minutes = max(1, int(window.total_seconds() // 60))
        super().__init__(
            long_message="For your safety, changing your email addresses needs a sign-in from "
            f"the last {minutes} minute{'s' if minutes != 1 else ''}. Sign in again with a "
            "new link or code, then try again."
        )


class NotFoundError(AuthError):
    """No such record for this caller; a record of someone else's reads the same."""

    code = ErrorCode.NOT_FOUND
    status_hint = 404
    default_message = "Not found."


class InvalidStateError(AuthError):
    """The attempt or session cannot do that now (complete, abandoned, verified)."""

    code = ErrorCode.INVALID_STATE
    status_hint = 409
    default_message = "That cannot be done at this point of the flow."


class LinkStillWorksError(InvalidStateError):
    """A resend refused: the link still works, or (``newer``) a newer link of its attempt
    does, such as the one a resend just sent. Nothing was sent: the email to use is in the
    inbox already."""

    def __init__(self, *, newer: bool) -> None:
        self.newer = newer
        which = "A newer link" if newer else "This link"
        super().__init__(
            f"{which} still works.", long_message=f"{which} still works: open it from your email."
        )


class ConflictError(AuthError):
    """A concurrent change won a compare-and-set race every time; nothing was written."""

    code = ErrorCode.CONFLICT
    status_hint = 409
    default_message = "Something changed at the same time. Please try again."


class IdentifierExistsError(AuthError):
    """The address has an account (said only with enumeration protection off)."""

    code = ErrorCode.IDENTIFIER_EXISTS
    status_hint = 422
    default_message = "That email address is taken. Please try another."


class IdentifierNotFoundError(AuthError):
    """The address has no account (said only with enumeration protection off)."""

    code = ErrorCode.IDENTIFIER_NOT_FOUND
    status_hint = 422
    default_message = "Couldn't find your account."


class RateLimitedError(AuthError):
    """Too many tries; ``retry_after`` says when the next one may succeed."""

    code = ErrorCode.RATE_LIMITED
    status_hint = 429
    default_message = "Too many requests. Please wait and try again."

    def __init__(self, retry_after: timedelta, reason: str = "Too many requests.") -> None:
        self.retry_after = retry_after
        super().__init__(long_message=f"{reason} Try again in {_readable(self.seconds)}.")

    @property
    def seconds(self) -> int:
        """``retry_after`` in whole seconds, rounded up, at least 1 (for ``Retry-After``)."""
        return max(1, -int(-self.retry_after.total_seconds() // 1))


def _readable(seconds: int) -> str:
    """A wait as a person reads it: "40 seconds", "3 minutes", "2 hours" (rounded up)."""
    if seconds <= 90:
        count, unit = seconds, "second"
    elif seconds <= 90 * 60:
        count, unit = -(-seconds // 60), "minute"
    else:
        count, unit = -(-seconds // 3600), "hour"
    return f"{count} {unit}{'s' if count != 1 else ''}"


class MailDeliveryError(AuthError):
    """The mail server did not take the email; ``permanent`` says whether a retry may work."""

    code = ErrorCode.MAIL_DELIVERY_FAILED
    status_hint = 502
    default_message = "We could not send the email. Please try again."

    def __init__(self, message: str | None = None, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class StorageUnavailableError(AuthError):
    """The storage cannot be reached now, or did not answer within ``storage_timeout``; try
    again shortly. ``long_message`` may name the backend (for the log): a web layer answers
    with ``message`` only, and ``retry_after_seconds`` as ``Retry-After``."""

    code = ErrorCode.STORAGE_UNAVAILABLE
    status_hint = 503
    default_message = "Temporarily unavailable. Please try again in a few seconds."
    retry_after_seconds: ClassVar[int] = 5
