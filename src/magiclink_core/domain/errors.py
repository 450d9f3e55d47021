"""The typed errors of magiclink.

Every error carries a stable ``code`` string; the HTTP layer maps codes to statuses and JSON and
decides what to reveal. The base class cannot be raised directly.

    AuthError (abstract)
    ├── MagicLinkError            code: expired | failed | client_mismatch (the link did not work)
    │   └── MagicLinkExpiredError carries ``expired_at``
    ├── ConfirmationCodeError     code: confirmation_code_incorrect (another try is allowed)
    ├── InvalidEmailError         code: invalid_email_address
    ├── InvalidRedirectError      code: redirect_url_not_allowed
    ├── InvalidRequestError       code: invalid_request (a malformed argument)
    ├── NotFoundError             code: not_found (or not yours: the two are not told apart)
    ├── InvalidStateError         code: invalid_state (the attempt cannot do that now)
    ├── IdentifierExistsError     code: identifier_exists (only with enumeration protection off)
    ├── IdentifierNotFoundError   code: identifier_not_found (only with enumeration protection off)
    ├── NotAllowedError           code: not_allowed (a veto hook refused)
    ├── RateLimitedError          code: rate_limited, carries ``retry_after``
    ├── UnauthenticatedError      code: unauthenticated
    ├── ConflictError             code: conflict (a concurrent change won; nothing was written)
    ├── MailDeliveryError         code: mail_delivery_failed, carries ``permanent``
    └── StorageUnavailableError   code: storage_unavailable
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar


class MagicLinkErrorCode(StrEnum):
    """Why a magic link did not work (the guide's ``MagicLinkErrorCode``)."""

    EXPIRED = "expired"
    FAILED = "failed"
    CLIENT_MISMATCH = "client_mismatch"


class AuthError(Exception):
    """Base of every magiclink error; abstract, raise a subclass."""

    code: str = ""
    default_message: ClassVar[str] = ""

    def __init__(self, message: str | None = None, *, long_message: str | None = None) -> None:
        if type(self) is AuthError:
            raise TypeError("AuthError is abstract: raise one of its subclasses")
        self.message = message or self.default_message
        self.long_message = long_message or self.message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class MagicLinkError(AuthError):
    """A magic link was expired, already used, unknown, tampered with, or clicked by a client
    the cross-device policy refuses."""

    default_message = "This link is invalid or has already been used."

    def __init__(
        self,
        code: MagicLinkErrorCode,
        message: str | None = None,
        *,
        long_message: str | None = None,
        redirect_url: str | None = None,
    ) -> None:
        self.code = code.value
        self.error_code = code
        # where the link's attempt wanted to go, set when the client that asked for the link
        # clicked it: the web layer sends it there with the status, so the app can say what
        # happened (and offer to resend)
        self.redirect_url = redirect_url
        super().__init__(message, long_message=long_message)


class MagicLinkExpiredError(MagicLinkError):
    """The link's time ran out; ``expired_at`` says when."""

    def __init__(self, expired_at: datetime) -> None:
        self.expired_at = expired_at
        super().__init__(
            MagicLinkErrorCode.EXPIRED,
            "This link has expired.",
            long_message=f"This link expired at {expired_at.isoformat()}. Ask for a new one.",
        )


class ConfirmationCodeError(AuthError):
    """The confirmation code typed on the clicking device was wrong; some tries remain."""

    code = "confirmation_code_incorrect"
    default_message = "That code does not match the one shown on the device that asked."

    def __init__(self, attempts_left: int) -> None:
        self.attempts_left = attempts_left
        super().__init__(
            long_message=f"That code is not the one shown on the other device. "
            f"{attempts_left} {'try' if attempts_left == 1 else 'tries'} left."
        )


class InvalidEmailError(AuthError):
    code = "invalid_email_address"
    default_message = "That is not a valid email address."


class InvalidRedirectError(AuthError):
    code = "redirect_url_not_allowed"
    default_message = "That redirect URL is not allowed."


class InvalidRequestError(AuthError):
    code = "invalid_request"
    default_message = "The request is not valid."


class NotFoundError(AuthError):
    code = "not_found"
    default_message = "Not found."


class InvalidStateError(AuthError):
    code = "invalid_state"
    default_message = "That cannot be done at this point of the flow."


class IdentifierExistsError(AuthError):
    code = "identifier_exists"
    default_message = "That email address is taken. Please try another."


class IdentifierNotFoundError(AuthError):
    code = "identifier_not_found"
    default_message = "Couldn't find your account."


class NotAllowedError(AuthError):
    code = "not_allowed"
    default_message = "You are not allowed to do that."


class RateLimitedError(AuthError):
    code = "rate_limited"
    default_message = "Too many requests. Please wait and try again."

    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after = retry_after
        seconds = max(1, int(retry_after.total_seconds()))
        super().__init__(long_message=f"Too many requests. Try again in {seconds} seconds.")


class UnauthenticatedError(AuthError):
    code = "unauthenticated"
    default_message = "You need to be signed in."


class ConflictError(AuthError):
    code = "conflict"
    default_message = "Something changed at the same time. Please try again."


class MailDeliveryError(AuthError):
    code = "mail_delivery_failed"
    default_message = "We could not send the email. Please try again."

    def __init__(self, message: str | None = None, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class StorageUnavailableError(AuthError):
    code = "storage_unavailable"
    default_message = "The service is unavailable. Please try again shortly."
