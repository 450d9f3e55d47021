"""Who is asking, in the shapes ASGI frameworks expect.

Following Starlette's ``AuthenticationMiddleware``: ``scope["user"]`` is a user object with
``is_authenticated``, ``display_name`` and ``identity`` (never None: an unauthenticated user
when signed out), and ``scope["auth"]`` holds the request's credentials with ``scopes``
(``["authenticated"]`` when signed in), so Starlette's and FastAPI's ``@requires`` work as they
do with Starlette's own middleware. The magiclink session and the rest live under
``scope["magiclink"]`` (:class:`MagicLinkState`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from magiclink_core import MagicLinks, Session, StorageUnavailableError

from .cookies import CookieNames

AUTHENTICATED = "authenticated"


@dataclass(frozen=True)
class MagicLinkUser:
    """Who is signed in, shaped as Starlette's ``BaseUser`` (``request.user``).

    ``display_name`` and ``email_address`` are the user's primary address, kept on the session
    record: no storage read is needed to show who is signed in.
    """

    id: str = ""
    session_id: str = ""
    display_name: str = ""
    session: Session | None = None

    @property
    def is_authenticated(self) -> bool:
        return bool(self.id)

    @property
    def identity(self) -> str:
        return self.id

    @property
    def email_address(self) -> str:
        return self.display_name

    def __bool__(self) -> bool:
        return self.is_authenticated


UNAUTHENTICATED = MagicLinkUser()


class AuthCredentials:
    """The shape of Starlette's ``AuthCredentials``: the request's ``scopes``. Used where
    Starlette is not installed; where it is, the middleware uses Starlette's own class."""

    def __init__(self, scopes: Sequence[str] | None = None) -> None:
        self.scopes = [] if scopes is None else list(scopes)


def credentials_type() -> type[Any]:
    """Starlette's ``AuthCredentials`` when Starlette is installed (so ``isinstance`` checks
    and ``@requires`` see what they expect), else :class:`AuthCredentials`."""
    try:
        from starlette.authentication import AuthCredentials as StarletteCredentials
    except ImportError:  # pragma: no cover - an app without Starlette
        return AuthCredentials
    return StarletteCredentials


@dataclass(frozen=True)
class MagicLinkState:
    """``scope["magiclink"]``: the session and what the app and the pages may need.

    ``available`` is False when the session could not be checked for this request (the storage
    was down, or did not answer within ``Settings.storage_timeout``): the app's routes still
    run, with an unauthenticated user and no scopes, and :func:`require_user` answers 503 with
    ``Retry-After`` instead of 401. :func:`auth_available` reads it from a request.
    """

    prefix: str
    magiclinks: MagicLinks
    cookies: CookieNames
    client_token: str | None
    session_token: str | None
    session: Session | None = None
    available: bool = True


def current_user(scope_or_request: Any) -> MagicLinkUser:
    """The signed-in user of a scope, or of a request with ``.scope`` (Starlette, FastAPI,
    Quart, Litestar); the unauthenticated user when signed out or outside the middleware."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    user = scope.get("user") if hasattr(scope, "get") else None
    return user if isinstance(user, MagicLinkUser) else UNAUTHENTICATED


def auth_available(scope_or_request: Any) -> bool:
    """False when the middleware could not check the request's session because the storage
    was down or too slow (``scope["magiclink"].available``): the user reads as signed out, but
    may not be. True otherwise, and outside the middleware."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    state = scope.get("magiclink") if hasattr(scope, "get") else None
    return not isinstance(state, MagicLinkState) or state.available


class NotSignedIn(Exception):
    """Raised by :func:`require_user` where no framework's HTTP error is known (status 401, or
    503 when sign-in could not be checked)."""

    def __init__(self, message: str, status_code: int = 401) -> None:
        super().__init__(message)
        self.status_code = status_code


RETRY_AFTER = str(StorageUnavailableError.retry_after_seconds)
"""The ``Retry-After`` of :func:`require_user`'s 503 (seconds)."""


def require_user(request: Any) -> MagicLinkUser:
    """The signed-in user, or the framework's own 401: a FastAPI dependency
    (``Depends(require_user)``) and a plain helper in Starlette, Quart and Litestar routes.

    Raises Starlette's ``HTTPException(401)`` for Starlette and FastAPI requests, Werkzeug's
    ``Unauthorized`` for Quart (which answers 401 itself), Litestar's
    ``NotAuthorizedException``, else :class:`NotSignedIn`. When the session could not be
    checked (the storage is down: :func:`auth_available` is False), the same frameworks' 503
    with ``Retry-After`` instead: the visitor may well be signed in.
    """
    user = current_user(request)
    if user.is_authenticated:
        return user
    if not auth_available(request):
        raise _unavailable(request)
    raise _unauthorized(request)


def _framework_of(request: Any) -> str:
    current = getattr(request, "_get_current_object", None)  # Quart's request is a proxy
    concrete = current() if callable(current) else request
    return type(concrete).__module__.split(".")[0]


def _unauthorized(request: Any) -> Exception:
    message = "You need to be signed in."
    framework = _framework_of(request)
    if framework == "quart":
        from werkzeug.exceptions import Unauthorized

        return Unauthorized(message)
    if framework == "litestar":
        from litestar.exceptions import NotAuthorizedException

        return NotAuthorizedException(message)
    try:
        from starlette.exceptions import HTTPException
    except ImportError:  # pragma: no cover - no known framework
        return NotSignedIn(message)
    return HTTPException(401, message)


def _unavailable(request: Any) -> Exception:
    message = "Temporarily unavailable. Please try again in a few seconds."
    framework = _framework_of(request)
    if framework == "quart":
        from werkzeug.exceptions import ServiceUnavailable

        return ServiceUnavailable(message, retry_after=int(RETRY_AFTER))
    if framework == "litestar":
        from litestar.exceptions import ServiceUnavailableException

        return ServiceUnavailableException(message, headers={"Retry-After": RETRY_AFTER})
    try:
        from starlette.exceptions import HTTPException
    except ImportError:  # pragma: no cover - no known framework
        return NotSignedIn(message, 503)
    return HTTPException(503, message, headers={"Retry-After": RETRY_AFTER})


def _connection_type() -> Any:
    """Starlette's HTTPConnection when installed: FastAPI then passes the request to
    :func:`require_user` used as a dependency (no framework is imported otherwise)."""
    try:
        from starlette.requests import HTTPConnection
    except ImportError:  # pragma: no cover
        return Any
    return HTTPConnection


require_user.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter(
            "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_connection_type()
        )
    ],
    return_annotation=MagicLinkUser,
)
