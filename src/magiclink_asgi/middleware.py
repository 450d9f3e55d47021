"""``MagicLinkMiddleware``: the auth routes under a prefix, the identity in the scope.

A pure ASGI middleware (in the manner of Starlette's ``SessionMiddleware``): options are resolved
in ``__init__``, per-request values live in ``__call__``. Under the prefix, ``/v1/...`` is the
JSON API and the link landing; any other path goes to the hosted pages. Everywhere else the
request passes through with ``scope["user"]``, ``scope["auth"]`` (Starlette's conventions, see
``identity.py``) and ``scope["magiclink"]`` set. A request without a magiclink cookie costs no
parsing and no storage work; one with a session cookie costs one ``MagicLinks.authenticate``.
The app's own responses get ``Vary: Cookie`` when the identity came from a cookie, and a
session cookie that no longer works is cleared on them too (as ``SessionMiddleware`` does).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from magiclink_core import (
    MagicLinks,
    NotFoundError,
    RequestInfo,
    Session,
    StorageUnavailableError,
)

from . import security
from .api import Api, Call
from .cookies import CookieNames
from .http import (
    ASGIApp,
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    error_response,
    header,
)
from .identity import (
    AUTHENTICATED,
    UNAUTHENTICATED,
    MagicLinkState,
    MagicLinkUser,
    credentials_type,
)
from .landing import Landing
from .lifespan import run_lifespan
from .peers import TrustedProxies, describe_device
from .routing import VERIFY, prefix_of
from .static_files import load_static_files, serve

if TYPE_CHECKING:
    from .pages import HostedPages


class MagicLinkMiddleware:
    """Mount magic-link authentication into any ASGI app.

    :param app: the ASGI app to wrap.
    :param magiclinks: the configured :class:`~magiclink_core.MagicLinks`.
    :param prefix: where the routes live; by default the one ``settings.verify_path`` implies
        (``/auth`` for ``/auth/v1/verify``). If given, it must agree with it.
    :param secure_cookies: ``Secure`` + ``__Host-`` cookies; default: ``settings.is_https``.
    :param pages: serve the hosted pages (True), use these :class:`HostedPages`, or not (False).
    :param dev_mailbox: let the hosted pages show the memory outbox (development only).
    :param max_body_bytes: the largest request body accepted.
    :param trusted_proxies: addresses or networks of the proxies in front of the app: from
        them (only), the client IP is read from ``proxy_header`` (see :class:`TrustedProxies`).
        Behind a proxy, set it: the per-IP rate limits would otherwise count every visitor as
        the proxy.
    :param proxy_header: ``"X-Forwarded-For"`` (default) or ``"Forwarded"`` (RFC 7239): the one
        your proxies set.
    :param hsts_seconds: ``Strict-Transport-Security: max-age=...`` on every response under the
        prefix; default (None): a year when ``settings.base_url`` is https, else none; 0: none.
        The app's own responses are left to the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        magiclinks: MagicLinks,
        prefix: str | None = None,
        *,
        secure_cookies: bool | None = None,
        pages: HostedPages | bool = True,
        dev_mailbox: bool = False,
        max_body_bytes: int = 16384,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
        hsts_seconds: int | None = None,
    ) -> None:
        self.app = app
        self.magiclinks = magiclinks
        self.prefix = prefix_of(magiclinks, prefix)
        settings = magiclinks.settings
        if max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        self.cookies = CookieNames.build(
            settings, secure=settings.is_https if secure_cookies is None else secure_cookies
        )
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = TrustedProxies(trusted_proxies, proxy_header)
        self._hsts = security.hsts(hsts_seconds, https=settings.is_https)
        self.api = Api(magiclinks, self.cookies)
        self.landing = Landing(magiclinks, self.prefix, self.cookies)
        self.pages = self._hosted_pages(pages, dev_mailbox)
        self._static = load_static_files() if self.pages is None else {}
        self.landing.sign_in_url = getattr(self.pages, "sign_in_url", None)
        self.landing.sign_up_url = getattr(self.pages, "sign_up_url", None)
        self.landing.user_profile_url = getattr(self.pages, "user_profile_url", None)
        credentials = credentials_type()
        self._signed_in = credentials([AUTHENTICATED])
        self._signed_out = credentials()
        self._nobody = MagicLinkState(self.prefix, magiclinks, self.cookies, None, None)
        # what the names of our two cookies begin with ("magiclink_", or "__Host-magiclink_"):
        # a request whose Cookie headers lack it holds neither, and is answered without parsing
        # anything. Our other cookies named so (the landing's and the hosted pages', over http)
        # are scoped to paths under the prefix, whose requests are parsed anyway
        names = [self.cookies.session, self.cookies.client]
        self._names_start = os.path.commonprefix(names).encode()  # noqa: RUF071 - not paths
        # the prefix's last character, where a path under it must have it: most paths of the
        # app differ there, and are told apart without a call of ``str.startswith``, whose
        # arguments CPython 3.11 parses as a tuple: about 460 of the 6,100 instructions the
        # middleware added to a request outside the prefix (callgrind)
        self._prefix_end = len(self.prefix) - 1
        self._prefix_last = self.prefix[-1]

    def _hosted_pages(self, pages: HostedPages | bool, dev_mailbox: bool) -> ASGIApp | None:
        if pages is False:
            if dev_mailbox:
                raise ValueError("dev_mailbox=True needs the hosted pages (pages=True)")
            return None
        if pages is True:
            from .pages import HostedPages

            return HostedPages(self.magiclinks, prefix=self.prefix, dev_mailbox=dev_mailbox)
        if pages.prefix != self.prefix:
            raise ValueError(
                f"HostedPages(prefix={pages.prefix!r}) is mounted under {self.prefix!r}: its "
                "links would answer 404; leave prefix= out of HostedPages (it follows "
                "settings.verify_path)"
            )
        if dev_mailbox and pages.mailbox is None:
            raise ValueError(
                "dev_mailbox=True is set on the middleware but not on the HostedPages "
                "given as pages=: pass HostedPages(..., dev_mailbox=True)"
            )
        return pages

    def request_info(self, scope: Scope) -> RequestInfo:
        """Who is asking: User-Agent, IP and a readable device, for emails and the landing."""
        user_agent = (header(scope, "user-agent") or "")[:512]
        return RequestInfo(
            user_agent=user_agent,
            ip_address=self.trusted_proxies.client_ip(scope),
            device=describe_device(user_agent),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            end = self._prefix_end
            ours = (
                len(path) > end
                and path[end] == self._prefix_last
                and path.startswith(self.prefix)
                and (len(path) == end + 1 or path[end + 1] == "/")
            )
            if ours and self._hsts is not None:
                send = _adding_header(send, self._hsts)
        elif kind == "websocket":
            path, ours = scope["path"], False
        else:
            if kind == "lifespan":
                # the app's whole life: wake-ups from other instances are heard, and at
                # shutdown the storage, the notifier and the mail connection are closed
                await run_lifespan(self.magiclinks, self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if not ours:
            # the hot path of a request without our cookie: a bytes search, nothing parsed
            # (``headers`` is required in an ASGI scope; Starlette reads it so too)
            for name, value in scope["headers"]:
                if name == b"cookie" and self._holds_ours(value):
                    break
            else:
                scope["user"] = UNAUTHENTICATED
                scope["auth"] = self._signed_out
                scope["magiclink"] = self._nobody
                await self.app(scope, receive, send)
                return
        # one storage budget (settings.storage_timeout) for the whole request, the app's own
        # calls to magiclinks included
        with self.magiclinks.storage_budget():
            await self._identified(scope, receive, send, path, ours)

    async def _identified(
        self, scope: Scope, receive: Receive, send: Send, path: str, ours: bool
    ) -> None:
        session_token, client_token = self._our_cookies(scope)
        available = True
        try:
            session = await self.magiclinks.authenticate(session_token)
        except StorageUnavailableError:
            # the storage is down or slow: the request goes on signed out, marked so (the
            # app's routes still work; require_user and the auth routes answer 503)
            session, available = None, False
        scope["user"] = (
            MagicLinkUser(session.user_id, session.id, session.email_address, session)
            if session is not None
            else UNAUTHENTICATED
        )
        scope["auth"] = self._signed_in if session is not None else self._signed_out
        scope["magiclink"] = MagicLinkState(
            prefix=self.prefix,
            magiclinks=self.magiclinks,
            cookies=self.cookies,
            client_token=client_token,
            session_token=session_token,
            session=session,
            available=available,
        )
        if not ours:
            dead = available and session is None and session_token is not None
            await self.app(scope, receive, self._wrap_send(send, clear_session=dead))
            return
        sub = path[len(self.prefix) :]
        if sub == "/v1" or sub.startswith("/v1/"):
            await self._v1(scope, receive, send, sub, session, available)
        elif self.pages is not None:
            await self.pages(scope, receive, send)
        elif sub.startswith("/static/"):
            # without the hosted pages, the files the link landing links to (its stylesheet and
            # icon) and the browser client are still served
            response = serve(self._static, scope, sub[len("/static/") :])
            await response(send, head=scope["method"] == "HEAD")
        else:
            await error_response(NotFoundError())(send)

    def _holds_ours(self, cookie_header: bytes) -> bool:
        """Whether a Cookie header may hold one of our cookies (a bytes search: a false yes
        only costs the parse that follows)."""
        # find, not ``in``: CPython 3.11 first tries a bytes ``in``'s operand as an integer,
        # raising and clearing a TypeError, which costs about as much as the search again
        return cookie_header.find(self._names_start) >= 0

    def _our_cookies(self, scope: Scope) -> tuple[str | None, str | None]:
        """The session and client tokens in the Cookie headers (the first of each name), read
        without parsing the others: on every signed-in request, a general cookie parser cost
        more than the session check itself."""
        session = client = None
        for name, value in scope.get("headers", ()):
            if name != b"cookie" or not self._holds_ours(value):
                continue
            for part in bytes(value).decode("latin-1").split(";"):
                key, _, found = part.partition("=")
                key = key.strip()
                if key == self.cookies.session and session is None:
                    session = _unquoted(found.strip())
                elif key == self.cookies.client and client is None:
                    client = _unquoted(found.strip())
        return session, client

    def _wrap_send(self, send: Send, *, clear_session: bool) -> Send:
        """``send``, adding ``Vary: Cookie`` (the identity came from a cookie) and, for a session
        cookie that no longer works, the header that clears it."""
        cleared = self.cookies.clear_session().encode("latin-1") if clear_session else None

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                _add_vary_cookie(headers)
                if cleared is not None:
                    headers.append((b"set-cookie", cleared))
                message["headers"] = headers
            await send(message)

        return send_wrapper

    async def _v1(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        sub: str,
        session: Session | None,
        available: bool,
    ) -> None:
        request = Request(scope, receive, max_body_bytes=self.max_body_bytes)
        call = Call(request, receive, session, lambda: self.request_info(scope))
        if available and session is None and request.cookies.get(self.cookies.session):
            call.cookies_out.append(self.cookies.clear_session())  # ended or expired
        response: Response | None
        landing = sub == VERIFY or sub.startswith(VERIFY + "/")
        if sub == "/v1/openapi.json":
            from .openapi import openapi_response

            response = openapi_response(self.prefix, request.method, self.cookies)
        elif not available:  # the session check found the storage down: so would the call
            outage = StorageUnavailableError()
            if landing:
                response = self.landing.unavailable(call, outage)
            else:
                response = error_response(outage).defaults(security.API)
        elif landing:
            response = await self.landing.handle(call, sub)
        else:
            response = await self.api.handle(call, sub)
        if response is None:  # the client went away while waiting
            return
        for cookie in call.cookies_out:
            response.add("Set-Cookie", cookie)
        await response(send, head=request.method == "HEAD")


def _adding_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    """``send``, adding ``header`` to the response's start."""

    async def send_wrapper(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return send_wrapper


def _unquoted(value: str) -> str:
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value


def _add_vary_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"cookie" not in value.lower() and value.strip() != b"*":
                headers[index] = (name, value + b", Cookie")
            return
    headers.append((b"vary", b"Cookie"))
