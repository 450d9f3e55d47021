"""Hosted pages: sign-in, sign-up, the user profile and the link's completion page.

Each page is a server-rendered shell that mounts one of the custom elements of
``static/magiclink.js`` (``<magiclink-sign-in>``, ``<magiclink-sign-up>``,
``<magiclink-user-profile>``), so the hosted pages and the components an app embeds are one
implementation. The pages call nothing but the HTTP API (docs/http-api.md); no rule lives here.

``MagicLinkMiddleware`` sends every path under its prefix other than ``/v1/...`` to an instance
of :class:`HostedPages` (a plain ASGI app: no framework imported).

One page takes a form: the sign-out page, for a browser without JavaScript (its element signs
out through the API). The form carries a CSRF token, checked as the landing checks its forms
(double-submit, and a same-origin ``Origin``), and is answered by a redirect.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from magiclink_core import (
    AuthError,
    InvalidRedirectError,
    InvalidRequestError,
    MagicLinks,
    NotFoundError,
    StorageUnavailableError,
)

from . import security
from .cookies import CookieNames, csrf_token_matches, new_csrf_token, same_origin
from .devmail import DevMailbox
from .http import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    html_response,
    parse_cookies,
    query_of,
    read_only,
    redirect,
)
from .routing import prefix_of
from .static_files import load_static_files, serve
from .templates import render, template_loader

__all__ = ["HostedPages", "template_loader"]

_THEME_NAME = re.compile(r"^(--)?[A-Za-z][A-Za-z0-9-]*$")
_THEME_VALUE = re.compile(r"^[^;{}<>\\\n\r]*$")

Page = Callable[[Scope], Response]


@dataclass(frozen=True)
class _Flow:
    """What differs between the sign-in and the sign-up page."""

    title: str
    element: str
    action: str
    after_attribute: str
    other_attribute: str


_SIGN_IN = _Flow("Sign in", "magiclink-sign-in", "Signing in", "after-sign-in-url", "sign-up-url")
_SIGN_UP = _Flow("Sign up", "magiclink-sign-up", "Signing up", "after-sign-up-url", "sign-in-url")


class HostedPages:
    """The hosted pages, as an ASGI app mounted under ``prefix`` by the middleware.

    :param magiclinks: the app's :class:`~magiclink_core.MagicLinks`.
    :param prefix: where the middleware mounts the routes; by default the one
        ``settings.verify_path`` implies (``/auth``), as for the middleware.
    :param dev_mailbox: serve the development mailbox at ``{prefix}/dev/mailbox``. Refused
        unless the app's ``base_url`` is on localhost and its mailer keeps an outbox.
    :param app_name: shown on every page; defaults to ``settings.app_name``.
    :param logo_url: an image shown above the app name.
    :param theme: CSS custom properties, such as ``{"--ml-accent": "#0b6e4f"}`` (names
        without ``--`` get ``--ml-`` prepended).
    :param after_sign_in_url, after_sign_up_url: where the pages go when done (a page's
        ``?redirect_url=`` wins when the core's redirect rule allows it).
    :param after_sign_out_url: where signing out goes (the sign-out page is replaced in the
        history, so Back does not lead to it again); by default the sign-out page stays and
        says "You're signed out", with a link to sign in again.
    :param sign_in_url, sign_up_url, user_profile_url: where the pages link to each other
        (defaults: the hosted ones).
    """

    def __init__(
        self,
        magiclinks: MagicLinks,
        *,
        prefix: str | None = None,
        dev_mailbox: bool = False,
        app_name: str | None = None,
        logo_url: str | None = None,
        theme: Mapping[str, str] | None = None,
        after_sign_in_url: str = "/",
        after_sign_up_url: str = "/",
        after_sign_out_url: str | None = None,
        sign_in_url: str | None = None,
        sign_up_url: str | None = None,
        user_profile_url: str | None = None,
        home_url: str = "/",
    ) -> None:
        self.magiclinks = magiclinks
        self.prefix = prefix_of(magiclinks, prefix)
        self.app_name = app_name or magiclinks.settings.app_name
        self.logo_url = logo_url
        self.theme = _check_theme(theme or {})
        self.after_sign_in_url = after_sign_in_url
        self.after_sign_up_url = after_sign_up_url
        self.sign_in_url = sign_in_url or f"{self.prefix}/sign-in"
        self.sign_up_url = sign_up_url or f"{self.prefix}/sign-up"
        self.user_profile_url = user_profile_url or f"{self.prefix}/user"
        self.after_sign_out_url = after_sign_out_url
        self.sign_out_url = f"{self.prefix}/sign-out"
        self.home_url = home_url
        self.mailbox: DevMailbox | None = None
        if dev_mailbox:
            self.mailbox = DevMailbox(magiclinks)
        self.static = load_static_files()
        self._pages_path = self.prefix or "/"
        self._pages: dict[str, Page] = {
            "/sign-in": self._sign_in,
            "/sign-up": self._sign_up,
            "/user": self._user,
            "/verify": self._verify,
            "/sign-out": self._sign_out,
        }

    def static_url(self, name: str) -> str:
        """The URL of a static file, versioned by its content (cached for a year)."""
        return f"{self.prefix}/static/{name}?v={self.static[name].version}"

    def next_url(self, value: str | None, default: str) -> str:
        """``value`` (a page's ``?redirect_url=``) when the core's redirect rule allows it,
        else ``default``: a page never sends anybody to a site the app did not allow."""
        if not value:
            return default
        try:
            allowed = self.magiclinks.check_redirect_url(value)
        except InvalidRedirectError:
            return default
        # a path stays a path: the browser stays on the host it is on (base_url may name
        # another spelling of it, such as localhost for 127.0.0.1, whose cookies differ)
        return value if value.startswith("/") else allowed

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return
            raise RuntimeError("HostedPages serves only HTTP")
        if scope["method"] == "POST" and self._path(scope).rstrip("/") == "/sign-out":
            response = await self._sign_out_form(scope, receive)
        else:
            response = self.respond(scope)
        await response(send, head=scope["method"] == "HEAD")

    def _path(self, scope: Scope) -> str:
        path: str = scope["path"]
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :] or "/"
        return path

    def respond(self, scope: Scope) -> Response:
        """The response to one request below the prefix (the sign-out form's POST aside)."""
        path = self._path(scope)
        if scope["method"] not in {"GET", "HEAD"}:
            return read_only()
        if path.startswith("/static/"):
            return serve(self.static, scope, path[len("/static/") :])
        if path.startswith("/dev/mailbox") and self.mailbox is not None:
            return self.mailbox.handle(scope, path[len("/dev/mailbox") :], self.page)
        page = self._pages.get(path.rstrip("/") or "/")
        if page is None:
            return self.page("pages/not_found.html", scope, title="Page not found", status=404)
        if not getattr(scope.get("magiclink"), "available", True):
            # the session check found the storage down: who is signed in is unknown
            return self._unavailable(scope)
        return page(scope)

    def _unavailable(self, scope: Scope) -> Response:
        response = self.page(
            "pages/unavailable.html", scope, title="Temporarily unavailable", status=503
        )
        response.add("Retry-After", str(StorageUnavailableError.retry_after_seconds))
        return response

    # -- pages ---------------------------------------------------------------------------------

    def _sign_in(self, scope: Scope) -> Response:
        return self._auth_flow(scope, _SIGN_IN, self.after_sign_in_url, self.sign_up_url)

    def _sign_up(self, scope: Scope) -> Response:
        return self._auth_flow(scope, _SIGN_UP, self.after_sign_up_url, self.sign_in_url)

    def _auth_flow(self, scope: Scope, flow: _Flow, after: str, other_url: str) -> Response:
        """The sign-in or sign-up page; a signed-in visitor goes on at once, unless it was sent
        there from here seconds ago: an app page that sends signed-in people back (a rule of
        its own, say a role) then finds the page saying "You're already signed in", with a
        way on, instead of a redirect loop the browser gives up on."""
        after = self.next_url(_query(scope).get("redirect_url"), after)
        if not _signed_in(scope):
            return self._auth_page(scope, flow, after, other_url)
        # the middleware's cookie names (its secure_cookies choice included)
        names: CookieNames | None = getattr(scope.get("magiclink"), "cookies", None)
        mark = _sent_on_mark(after)
        if names is None or parse_cookies(scope).get(names.sent_on) != mark:
            response = redirect(after)
            if names is not None:
                response.add(
                    "Set-Cookie", names.set_sent_on(mark, self._pages_path, SENT_ON_SECONDS)
                )
            return response
        # back within seconds: its element says so and sends nobody on; said once, the next
        # visit is sent on again
        response = self._auth_page(scope, flow, after, other_url, no_redirect=True)
        response.add("Set-Cookie", names.set_sent_on("", self._pages_path, 0))
        return response

    def _auth_page(
        self, scope: Scope, flow: _Flow, after: str, other_url: str, *, no_redirect: bool = False
    ) -> Response:
        return self.page(
            "pages/auth_flow.html",
            scope,
            **asdict(flow),
            after_url=after,
            other_url=other_url,
            no_redirect=no_redirect,
        )

    def _user(self, scope: Scope) -> Response:
        if not _signed_in(scope):
            return redirect(f"{self.sign_in_url}?redirect_url={quote(self.user_profile_url)}")
        return self.page("pages/user.html", scope, after_url=self.home_url, title="Your account")

    def _verify(self, scope: Scope) -> Response:
        query = _query(scope)
        return self.page(
            "pages/verify.html",
            scope,
            after_url=self.next_url(query.get("after"), self.after_sign_in_url),
            title="Verifying",
            flow=query.get("flow", ""),
        )

    def _sign_out(self, scope: Scope, *, refused: str = "", status: int = 200) -> Response:
        """The sign-out page: its element, and for a browser without JavaScript (``noscript``)
        the question as a form, with a CSRF token in it and in a cookie of the page's path."""
        names: CookieNames | None = getattr(scope.get("magiclink"), "cookies", None)
        if names is None or not _signed_in(scope):
            return self.page("pages/sign_out.html", scope, title="Sign out", status=status)
        token = parse_cookies(scope).get(names.csrf) or new_csrf_token()
        response = self.page(
            "pages/sign_out.html",
            scope,
            title="Sign out",
            status=status,
            csrf_token=token,
            refused=refused,
        )
        response.add("Set-Cookie", names.set_csrf(token, self.sign_out_url))
        return response

    async def _sign_out_form(self, scope: Scope, receive: Receive) -> Response:
        """The sign-out page's form (a browser without JavaScript): this browser's session
        ends and its cookie goes, answered by a redirect (the sign-out page, which then says
        "You're signed out", or ``after_sign_out_url``), so Back and reload never send it
        again. A form without its token, or from another site, signs nobody out."""
        state = scope.get("magiclink")
        names: CookieNames | None = getattr(state, "cookies", None)
        if names is None:  # not behind the middleware: no session to end
            return read_only()
        if not getattr(state, "available", True):
            return self._unavailable(scope)
        request = Request(scope, receive, max_body_bytes=FORM_BYTES)
        try:
            data = await request.form()
        except AuthError:
            data = {}
        allowed = same_origin(
            scope, self.magiclinks.settings.base_url, allow_missing=True
        ) and csrf_token_matches(request, names, data.get("csrf_token"))
        if not allowed:
            refused = "This form expired or came from another site. Press Sign out again."
            return self._sign_out(scope, refused=refused, status=403)
        response = redirect(self.after_sign_out_url or self.sign_out_url)
        session = getattr(scope.get("user"), "session", None)
        if session is not None:
            try:
                await self.magiclinks.end_session(session.id, user_id=session.user_id)
            except NotFoundError:
                pass  # ended meanwhile (another tab, another device): signed out all the same
            except StorageUnavailableError:
                return self._unavailable(scope)
            for cleared in names.signed_out():
                response.add("Set-Cookie", cleared)
            response.add(*security.SIGNED_OUT)
        return response

    # -- rendering -----------------------------------------------------------------------------

    def page(self, template: str, scope: Scope, *, status: int = 200, **context: Any) -> Response:
        """A hosted page rendered from ``template``, with its security headers."""
        nonce = secrets.token_urlsafe(16)
        signed_in = _signed_in(scope)
        base = {
            "prefix": self.prefix,
            "app_name": self.app_name,
            "logo_url": self.logo_url,
            "theme": self.theme,
            "nonce": nonce,
            "static_url": self.static_url,
            "sign_in_url": self.sign_in_url,
            "sign_up_url": self.sign_up_url,
            "user_profile_url": self.user_profile_url,
            "after_sign_in_url": self.after_sign_in_url,
            "after_sign_up_url": self.after_sign_up_url,
            "after_sign_out_url": self.after_sign_out_url,
            "sign_out_url": self.sign_out_url,
            "home_url": self.home_url,
            # the length of the code in the email, so the pages' code field can expect it
            "email_code_length": self.magiclinks.settings.email_code_digits,
            "user": scope.get("user") if signed_in else None,
            "flow": "",
            "after_url": self.home_url,
        }
        base.update(context)
        response = html_response(render(template, **base), status)
        return response.defaults(security.hosted_page(nonce))


FORM_BYTES = 4096
"""The largest body the sign-out form's POST may have (it carries one token)."""

SENT_ON_SECONDS = 10
"""How long the sign-in or sign-up page remembers where it just sent a signed-in visitor
(:attr:`CookieNames.sent_on`: a digest of the URL, on the hosted pages' path only)."""


def _sent_on_mark(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _query(scope: Scope) -> dict[str, str]:
    """A page's query; one that is not UTF-8 reads as none: the page's defaults, as for a
    ``redirect_url`` the app does not allow (a page only reads where to go on from it)."""
    try:
        return query_of(scope)
    except InvalidRequestError:
        return {}


def _signed_in(scope: Scope) -> bool:
    return bool(getattr(scope.get("user"), "is_authenticated", False))


def _check_theme(theme: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in theme.items():
        if not _THEME_NAME.match(name) or not _THEME_VALUE.match(value):
            raise ValueError(f"theme entry {name!r}: {value!r} is not a CSS custom property")
        checked[name if name.startswith("--") else f"--ml-{name}"] = value
    return checked
