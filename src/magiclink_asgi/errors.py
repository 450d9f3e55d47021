"""The HTTP layer's own refusals, as leaves of the core's error tree, and the one way any error
becomes an API answer.

Each error carries its :class:`~magiclink_core.ErrorCode` and HTTP status as class data (the
core's convention), so nothing here keeps a table of codes to statuses.
"""

from __future__ import annotations

from typing import Any

from magiclink_core import (
    AuthError,
    ConfirmationCodeError,
    EmailCodeError,
    ErrorCode,
    RateLimitedError,
    StorageUnavailableError,
)


class CSRFError(AuthError):
    """A state-changing request that did not come from this site's own pages."""

    code = ErrorCode.CSRF_FAILED
    status_hint = 403
    default_message = "Cross-origin request refused."


class MethodNotAllowedError(AuthError):
    """The path exists, not with this method; ``allow`` lists the methods it takes (HEAD
    wherever GET is: it is answered as GET)."""

    code = ErrorCode.METHOD_NOT_ALLOWED
    status_hint = 405

    def __init__(self, method: str, allow: list[str]) -> None:
        self.allow = sorted({*allow, "HEAD"} if "GET" in allow else set(allow))
        super().__init__(f"{method} is not allowed here.")


class PayloadTooLargeError(AuthError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status_hint = 413
    default_message = "The request body is too large."


class UnsupportedMediaTypeError(AuthError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    status_hint = 415
    default_message = "Send application/json or application/x-www-form-urlencoded."


def error_body(error: AuthError) -> dict[str, Any]:
    """The API's error shape: ``{"errors": [{code, message, long_message, meta}]}``."""
    meta: dict[str, Any] = {}
    if isinstance(error, ConfirmationCodeError | EmailCodeError):
        meta["attempts_left"] = error.attempts_left
    if isinstance(error, RateLimitedError):
        meta["retry_after"] = error.seconds
    # an outage's details (backend, host, port) are for the log, never for the client
    long_message = (
        error.message if isinstance(error, StorageUnavailableError) else error.long_message
    )
    return {
        "errors": [
            {
                "code": error.code.value,
                "message": error.message,
                "long_message": long_message,
                "meta": meta,
            }
        ]
    }


def error_headers(error: AuthError) -> list[tuple[str, str]]:
    """Headers an error's answer needs: ``Retry-After`` for a rate limit and an outage,
    ``Allow`` for 405."""
    if isinstance(error, RateLimitedError):
        return [("Retry-After", str(error.seconds))]
    if isinstance(error, MethodNotAllowedError):
        return [("Allow", ", ".join(error.allow))]
    if isinstance(error, StorageUnavailableError):
        return [("Retry-After", str(error.retry_after_seconds))]
    return []
