"""Hosted pages: sign-in, sign-up, the user profile and the link's completion page.

Each page is a server-rendered shell that mounts one of the custom elements of the browser
client ``magiclink.js`` (``<magiclink-sign-in>``, ``<magiclink-sign-up>``,
``<magiclink-user-profile>``; assembled from ``static/magiclink/`` by :mod:`.static_files`), so
the hosted pages and the components an app embeds are one implementation. The pages call nothing
but the HTTP API (docs/http-api.md); no rule lives here.

``MagicLinkMiddleware`` sends every path under its prefix other than ``/v1/...`` to an instance
of :class:`HostedPages` (a plain ASGI app: no framework imported).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2

from magiclink_core import MagicLinks

from .devmail import DevMailbox
from .http import Receive, Scope, Send, header
from .static_files import load_static_files

__all__ = ["HostedPages", "safe_next_url", "template_loader"]

_THEME_NAME = re.compile(r"^(--)?[A-Za-z][A-Za-z0-9-]*$")
_THEME_VALUE = re.compile(r"^[^;{}<>\\\n\r]*$")


def template_loader() -> jinja2.BaseLoader:
    """The loader for magiclink's templates, to add to an app's own jinja2 environment
    (``jinja2.ChoiceLoader([your_loader, template_loader()])``) so that
    ``{% from "magiclink/macros.html" import sign_in %}`` works."""
    return jinja2.PackageLoader("magiclink_asgi", "templates")


def safe_next_url(value: str | None, default: str) -> str:
    """``value`` when it is a path on this site (``/...``, not ``//host`` or ``/\\host``),
    else ``default``: a page's ``?redirect_url=`` never sends anybody to another site."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 0x20 or c == "\\" for c in value):
        return default
    return value


class HostedPages:
    """The hosted pages, as an ASGI app mounted under ``prefix`` by the middleware.

    :param magiclinks: the app's :class:`~magiclink_core.MagicLinks`.
    :param prefix: where the middleware mounts the routes (``/auth``).
    :param dev_mailbox: serve the development mailbox at ``{prefix}/dev/mailbox``. Refused
        unless the app's ``base_url`` is on localhost and its mailer keeps an outbox.
    :param app_name: shown on every page; defaults to ``settings.app_name``.
    :param logo_url: an image shown above the app name.
    :param theme: CSS custom properties, such as ``{"--ml-accent": "#0b6e4f"}`` (names
        without ``--`` get ``--ml-`` prepended).
    :param after_sign_in_url, after_sign_up_url: where the pages go when done (a page's
        ``?redirect_url=/path`` on this site wins).
    :param sign_in_url, sign_up_url, user_profile_url: where the pages link to each other
        (defaults: the hosted ones).
    """

    def __init__(
        self,
        magiclinks: MagicLinks,
        *,
        prefix: str = "/auth",
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
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.app_name = app_name or magiclinks.settings.app_name
        self.logo_url = logo_url
        self.theme = _check_theme(theme or {})
        self.after_sign_in_url = after_sign_in_url
        self.after_sign_up_url = after_sign_up_url
        self.sign_in_url = sign_in_url or f"{self.prefix}/sign-in"
        self.sign_up_url = sign_up_url or f"{self.prefix}/sign-up"
        self.user_profile_url = user_profile_url or f"{self.prefix}/user"
        self.after_sign_out_url = after_sign_out_url or self.sign_in_url
        self.home_url = home_url
        self.mailbox: DevMailbox | None = None
        if dev_mailbox:
            self.mailbox = DevMailbox(magiclinks)
        self.env = jinja2.Environment(
            loader=template_loader(),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.static = load_static_files()
        self.env.globals["static_url"] = self.static_url

    def static_url(self, name: str) -> str:
        """The URL of a static file, versioned by its content (cached for a year)."""
        item = self.static[name]
        return f"{self.prefix}/static/{name}?v={item.etag.strip(chr(34))}"

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                return
            raise RuntimeError("HostedPages serves only HTTP")
        path: str = scope["path"]
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :] or "/"
        method: str = scope["method"]
        if method not in {"GET", "HEAD"}:
            await self._respond(
                send,
                405,
                b"Method not allowed",
                "text/plain",
                method,
                extra=[(b"allow", b"GET, HEAD")],
            )
            return
        if path.startswith("/static/"):
            await self._serve_static(scope, send, path[len("/static/") :], method)
            return
        if path.startswith("/dev/mailbox"):
            if self.mailbox is None:
                await self._not_found(scope, send, method)
                return
            answer = self.mailbox.handle(scope, path[len("/dev/mailbox") :], self._render)
            headers = answer.headers or _page_headers(answer.nonce)
            await self._respond(
                send, answer.status, answer.body, answer.content_type, method, extra=headers
            )
            return
        handler = {
            "/sign-in": self._sign_in,
            "/sign-up": self._sign_up,
            "/user": self._user,
            "/verify": self._verify,
            "/sign-out": self._sign_out,
        }.get(path.rstrip("/") or "/")
        if handler is None:
            await self._not_found(scope, send, method)
            return
        await handler(scope, send, method)

    # -- pages ---------------------------------------------------------------------------------

    def _query(self, scope: Scope) -> dict[str, str]:
        raw = scope.get("query_string", b"").decode("latin-1")
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def _signed_in(self, scope: Scope) -> bool:
        user = scope.get("user")
        return bool(getattr(user, "is_authenticated", False))

    async def _sign_in(self, scope: Scope, send: Send, method: str) -> None:
        after = safe_next_url(self._query(scope).get("redirect_url"), self.after_sign_in_url)
        if self._signed_in(scope):
            await self._redirect(send, after)
            return
        await self._page(
            send, method, "pages/sign_in.html", scope, after_url=after, title="Sign in"
        )

    async def _sign_up(self, scope: Scope, send: Send, method: str) -> None:
        after = safe_next_url(self._query(scope).get("redirect_url"), self.after_sign_up_url)
        if self._signed_in(scope):
            await self._redirect(send, after)
            return
        await self._page(
            send, method, "pages/sign_up.html", scope, after_url=after, title="Sign up"
        )

    async def _user(self, scope: Scope, send: Send, method: str) -> None:
        if not self._signed_in(scope):
            await self._redirect(
                send, f"{self.sign_in_url}?redirect_url={quote(self.user_profile_url)}"
            )
            return
        await self._page(
            send, method, "pages/user.html", scope, after_url=self.home_url, title="Your account"
        )

    async def _verify(self, scope: Scope, send: Send, method: str) -> None:
        query = self._query(scope)
        after = safe_next_url(query.get("after"), self.after_sign_in_url)
        await self._page(
            send,
            method,
            "pages/verify.html",
            scope,
            after_url=after,
            title="Verifying",
            flow=query.get("flow", ""),
        )

    async def _sign_out(self, scope: Scope, send: Send, method: str) -> None:
        await self._page(
            send,
            method,
            "pages/sign_out.html",
            scope,
            after_url=self.after_sign_out_url,
            title="Sign out",
        )

    async def _not_found(self, scope: Scope, send: Send, method: str) -> None:
        await self._page(
            send,
            method,
            "pages/not_found.html",
            scope,
            after_url=self.home_url,
            title="Page not found",
            status=404,
        )

    # -- rendering -----------------------------------------------------------------------------

    def _render(self, template: str, **context: Any) -> tuple[bytes, str]:
        nonce = secrets.token_urlsafe(16)
        base = {
            "prefix": self.prefix,
            "app_name": self.app_name,
            "logo_url": self.logo_url,
            "theme": self.theme,
            "nonce": nonce,
            "sign_in_url": self.sign_in_url,
            "sign_up_url": self.sign_up_url,
            "user_profile_url": self.user_profile_url,
            "after_sign_in_url": self.after_sign_in_url,
            "after_sign_up_url": self.after_sign_up_url,
            "after_sign_out_url": self.after_sign_out_url,
            "home_url": self.home_url,
            "user": None,
            "flow": "",
        }
        base.update(context)
        return self.env.get_template(template).render(base).encode(), nonce

    async def _page(
        self,
        send: Send,
        method: str,
        template: str,
        scope: Scope,
        *,
        status: int = 200,
        **context: Any,
    ) -> None:
        user = scope.get("user")
        signed_in = self._signed_in(scope)
        body, nonce = self._render(template, user=user if signed_in else None, **context)
        await self._respond(
            send, status, body, "text/html; charset=utf-8", method, extra=_page_headers(nonce)
        )

    async def _redirect(self, send: Send, location: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        content_type: str,
        method: str,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _serve_static(self, scope: Scope, send: Send, name: str, method: str) -> None:
        item = self.static.get(name)  # a fixed set of names: no path ever reaches the disk
        if item is None:
            await self._respond(send, 404, b"Not found", "text/plain; charset=utf-8", method)
            return
        version = self._query(scope).get("v")
        cache = (
            b"public, max-age=31536000, immutable"
            if version == item.etag.strip('"')
            else b"public, max-age=300, must-revalidate"
        )
        headers = [
            (b"etag", item.etag.encode()),
            (b"cache-control", cache),
            (b"x-content-type-options", b"nosniff"),
        ]
        sent_tags = header(scope, "if-none-match") or ""
        if item.etag in [t.strip() for t in sent_tags.split(",")]:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await self._respond(send, 200, item.body, item.content_type, method, extra=headers)


def _page_headers(nonce: str) -> list[tuple[bytes, bytes]]:
    csp = (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data: https:; "
        "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return [
        (b"cache-control", b"no-store"),
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]


def _check_theme(theme: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in theme.items():
        if not _THEME_NAME.match(name) or not _THEME_VALUE.match(value):
            raise ValueError(f"theme entry {name!r}: {value!r} is not a CSS custom property")
        checked[name if name.startswith("--") else f"--ml-{name}"] = value
    return checked
