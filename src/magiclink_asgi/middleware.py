"""``MagicLinkMiddleware``: the auth routes under a prefix, the identity in the scope.

A pure ASGI middleware (in the manner of Starlette's ``SessionMiddleware``): options are resolved
in ``__init__``, per-request values live in ``__call__``. Under the prefix, ``/v1/...`` is the
JSON API and the link landing; any other path goes to the hosted pages. Everywhere else the
request passes through with ``scope["user"]``, ``scope["auth"]`` and ``scope["magiclink"]`` set,
at the cost of one ``MagicLinks.authenticate`` call.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from magiclink_core import (
    MagicLinks,
    NotFoundError,
    RequestInfo,
    Session,
    StorageUnavailableError,
)

from .api import Api, Call
from .cookies import CookieNames
from .http import (
    ASGIApp,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    error_response,
    header,
    parse_cookies,
)
from .landing import Landing

if TYPE_CHECKING:
    from .pages import HostedPages


@dataclass(frozen=True)
class MagicLinkUser:
    """Who is signed in, shaped as Starlette's ``request.user`` expects.

    ``display_name`` is the primary email address when it was loaded (always for the hosted
    pages, for app routes with ``load_user=True``), else ``""``.
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

    def __bool__(self) -> bool:
        return self.is_authenticated


UNAUTHENTICATED = MagicLinkUser()


@dataclass(frozen=True)
class MagicLinkState:
    """``scope["magiclink"]``: what the app and the pages may need of the middleware."""

    prefix: str
    magiclinks: MagicLinks
    cookies: CookieNames
    client_token: str | None
    session_token: str | None


def describe_device(user_agent: str) -> str:
    """ "Firefox 120 on Ubuntu", from a User-Agent, by ua-parser; "" when nothing is known."""
    if not user_agent:
        return ""
    import ua_parser

    result = ua_parser.parse(user_agent[:1024])
    browser = ""
    if result.user_agent is not None and result.user_agent.family != "Other":
        browser = result.user_agent.family
        if result.user_agent.major:
            browser += f" {result.user_agent.major}"
    system = ""
    if result.os is not None and result.os.family != "Other":
        system = result.os.family
    if browser and system:
        return f"{browser} on {system}"
    return browser or system


def client_ip(scope: Scope, trusted_proxies: frozenset[str]) -> str:
    """The peer's address; behind a trusted proxy, the nearest untrusted X-Forwarded-For hop."""
    peer = scope.get("client")
    ip = str(peer[0]) if peer else ""
    if ip not in trusted_proxies:
        return ip
    forwarded = header(scope, "x-forwarded-for")
    if not forwarded:
        return ip
    for hop in reversed([h.strip() for h in forwarded.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return ip
        if hop not in trusted_proxies:
            return hop
    return ip


def current_user(scope_or_request: Any) -> MagicLinkUser:
    """The signed-in user of a scope, or of a request with ``.scope`` (Starlette, FastAPI,
    Quart); the unauthenticated user when signed out or outside the middleware."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    user = scope.get("user") if hasattr(scope, "get") else None
    return user if isinstance(user, MagicLinkUser) else UNAUTHENTICATED


class NotSignedIn(Exception):
    """Raised by :func:`require_user` outside Starlette/FastAPI (status 401)."""

    status_code = 401


def require_user(request: Any) -> MagicLinkUser:
    """The signed-in user, or a 401: a FastAPI dependency (``Depends(require_user)``) and a
    plain helper. Raises Starlette's ``HTTPException(401)`` when Starlette is installed, else
    :class:`NotSignedIn`."""
    user = current_user(request)
    if user.is_authenticated:
        return user
    try:
        from starlette.exceptions import HTTPException
    except ImportError:  # pragma: no cover - Quart and friends
        raise NotSignedIn("You need to be signed in.") from None
    raise HTTPException(401, "You need to be signed in.")


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


class MagicLinkMiddleware:
    """Mount magic-link authentication into any ASGI app.

    :param app: the ASGI app to wrap.
    :param magiclinks: the configured :class:`~magiclink_core.MagicLinks`.
    :param prefix: where the routes live; ``prefix + "/v1/verify"`` must equal
        ``settings.verify_path`` (where the emailed links point).
    :param secure_cookies: ``Secure`` + ``__Host-`` cookies; default: ``settings.is_https``.
    :param pages: serve the hosted pages (True), use these :class:`HostedPages`, or not (False).
    :param dev_mailbox: let the hosted pages show the memory outbox (development only).
    :param max_body_bytes: the largest request body accepted.
    :param trusted_proxies: peer addresses whose ``X-Forwarded-For`` is believed.
    :param load_user: also read the user's primary address for app routes (two more reads).
    """

    def __init__(
        self,
        app: ASGIApp,
        magiclinks: MagicLinks,
        prefix: str = "/auth",
        *,
        secure_cookies: bool | None = None,
        pages: HostedPages | bool = True,
        dev_mailbox: bool = False,
        max_body_bytes: int = 16384,
        trusted_proxies: Iterable[str] = (),
        load_user: bool = False,
    ) -> None:
        self.app = app
        self.magiclinks = magiclinks
        if not prefix.strip("/"):
            raise ValueError("prefix cannot be empty: the app's own routes need the rest")
        self.prefix = "/" + prefix.strip("/")
        settings = magiclinks.settings
        if settings.verify_path != f"{self.prefix}/v1/verify":
            raise ValueError(
                f"prefix {prefix!r} does not match settings.verify_path "
                f"{settings.verify_path!r}: the emailed links would point elsewhere; "
                f"use prefix={settings.verify_path.removesuffix('/v1/verify')!r}"
            )
        if max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        self.cookies = CookieNames.build(
            settings, secure=settings.is_https if secure_cookies is None else secure_cookies
        )
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = frozenset(trusted_proxies)
        self.load_user = load_user
        self.api = Api(magiclinks, self.cookies)
        self.landing = Landing(magiclinks, self.prefix, self.cookies)
        self.pages: ASGIApp | None
        if pages is True:
            from .pages import HostedPages

            self.pages = HostedPages(magiclinks, prefix=self.prefix, dev_mailbox=dev_mailbox)
        elif pages is False:
            if dev_mailbox:
                raise ValueError("dev_mailbox=True needs the hosted pages (pages=True)")
            self.pages = None
        else:
            if dev_mailbox and getattr(pages, "mailbox", None) is None:
                raise ValueError(
                    "dev_mailbox=True is set on the middleware but not on the HostedPages "
                    "given as pages=: pass HostedPages(..., dev_mailbox=True)"
                )
            self.pages = pages

    def request_info(self, scope: Scope) -> RequestInfo:
        """Who is asking: User-Agent, IP and a readable device, for emails and the landing."""
        user_agent = (header(scope, "user-agent") or "")[:512]
        return RequestInfo(
            user_agent=user_agent,
            ip_address=client_ip(scope, self.trusted_proxies),
            device=describe_device(user_agent),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        ours = scope["type"] == "http" and (
            path == self.prefix or path.startswith(self.prefix + "/")
        )
        cookies = parse_cookies(scope)
        session_token = cookies.get(self.cookies.session)
        try:
            session = await self.magiclinks.authenticate(session_token)
        except StorageUnavailableError as exc:
            if not ours:
                raise
            await error_response(exc)(send)
            return
        display_name = ""
        if session is not None and (ours or self.load_user):
            try:
                user = await self.magiclinks.get_user(session.user_id)
                display_name = await self.magiclinks.primary_email(user) or ""
            except NotFoundError:  # the user was deleted under a live session
                session = None
        scope["user"] = (
            MagicLinkUser(session.user_id, session.id, display_name, session)
            if session is not None
            else UNAUTHENTICATED
        )
        scope["auth"] = session
        scope["magiclink"] = MagicLinkState(
            prefix=self.prefix,
            magiclinks=self.magiclinks,
            cookies=self.cookies,
            client_token=cookies.get(self.cookies.client),
            session_token=session_token,
        )
        if not ours:
            await self.app(scope, receive, send)
            return
        sub = path[len(self.prefix) :]
        if sub == "/v1" or sub.startswith("/v1/"):
            await self._v1(scope, receive, send, sub, session)
        elif self.pages is not None:
            await self.pages(scope, receive, send)
        else:
            await error_response(NotFoundError())(send)

    async def _v1(
        self, scope: Scope, receive: Receive, send: Send, sub: str, session: Session | None
    ) -> None:
        request = Request(scope, receive, max_body_bytes=self.max_body_bytes)
        call = Call(request, receive, session, lambda: self.request_info(scope))
        if session is None and request.cookies.get(self.cookies.session):
            call.cookies_out.append(self.cookies.clear_session())  # ended or expired
        response: Response | None
        if sub == "/v1/openapi.json":
            from .openapi import openapi_response

            response = openapi_response(self.prefix, request.method)
        elif sub == "/v1/verify" or sub.startswith("/v1/verify/"):
            response = await self.landing.handle(call, sub)
        else:
            response = await self.api.handle(call, sub)
        if response is None:  # the client went away while waiting
            return
        for cookie in call.cookies_out:
            response.add("Set-Cookie", cookie)
        await response(send, head=request.method == "HEAD")
