"""The link landing: where the emailed link points (``GET /v1/verify?token=…``).

The starting client's click is consumed and redirected. Any other client (a phone, a mail
scanner, a link preview) consumes nothing on GET: the token moves out of the URL into a
short-lived HttpOnly cookie scoped to the landing, and a confirmation page asks for the code the
starting device shows; only that form's POST consumes. The rules themselves are the core's
(``inspect_link`` / ``verify_link``); this module only carries tokens and renders pages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2

from magiclink_core import (
    AttemptKind,
    AuthError,
    ConfirmationCodeError,
    LinkPreview,
    MagicLinkError,
    MagicLinks,
    RateLimitedError,
)

from .api import Call
from .cookies import CookieNames, csrf_token_matches, new_csrf_token, same_origin
from .http import BodyError, Disconnected, Response, html_response, redirect

LANDING_HEADERS = [
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
]

LANDING_ROUTES: list[tuple[str, str, str]] = [
    # (method, path below the prefix, handler name)
    ("GET", "/v1/verify", "click"),
    ("GET", "/v1/verify/confirm", "confirm_page"),
    ("POST", "/v1/verify/confirm", "confirm"),
    ("POST", "/v1/verify/resend", "resend"),
]

ACTIONS = {
    AttemptKind.SIGN_IN: "sign in",
    AttemptKind.SIGN_UP: "create an account",
    AttemptKind.EMAIL_ADDRESS: "verify an email address",
}

ERROR_TEXT = {
    "expired": ("This link has expired", "Links work for a short time only."),
    "failed": (
        "This link no longer works",
        "It was used already, replaced by a newer one, or is not valid.",
    ),
    "client_mismatch": (
        "Open this link on the device that asked for it",
        "For your safety, this link works only in the browser where you asked for it.",
    ),
    "missing": (
        "Open the link from your email",
        "This page needs the link from the email we sent you.",
    ),
}


def with_status(url: str, status: str, session_id: str | None = None) -> str:
    """``url`` with ``__magiclink_status`` (and ``__magiclink_created_session``) added."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.startswith("__magiclink_")
    ]
    query.append(("__magiclink_status", status))
    if session_id:
        query.append(("__magiclink_created_session", session_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("magiclink_asgi", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Landing:
    """``/v1/verify``, ``/v1/verify/confirm`` (GET, POST) and ``/v1/verify/resend`` (POST)."""

    def __init__(self, magiclinks: MagicLinks, prefix: str, names: CookieNames) -> None:
        self.magiclinks = magiclinks
        self.prefix = prefix
        self.names = names
        self.path = f"{prefix}/v1/verify"
        self.env = environment()

    async def handle(self, call: Call, sub: str) -> Response:
        """Answer one landing request; every answer carries the landing headers."""
        routes = {(path, method): getattr(self, name) for method, path, name in LANDING_ROUTES}
        method = "GET" if call.request.method == "HEAD" else call.request.method
        handler = routes.get((sub.rstrip("/"), method))
        if handler is None:
            known = {m for (p, m) in routes if p == sub.rstrip("/")}
            if known:
                response = self._page(
                    "error.html",
                    405,
                    title="Not allowed",
                    detail="This page does not take that kind of request.",
                )
                response.add("Allow", ", ".join(sorted(known)))
            else:
                response = self._error("missing", 404)
        else:
            try:
                response = await handler(call)
            except BodyError as exc:
                response = self._page(
                    "error.html", exc.status, title="Something went wrong", detail=exc.message
                )
            except Disconnected:
                response = self._page(
                    "error.html",
                    400,
                    title="Something went wrong",
                    detail="The request was cut short.",
                )
        response.headers.extend(LANDING_HEADERS)
        return response

    # -- pages ----------------------------------------------------------------------------------

    def _page(self, template: str, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(f"landing/{template}").render(
            app_name=self.magiclinks.settings.app_name,
            css_url=f"{self.prefix}/static/magiclink.css",
            prefix=self.prefix,
            **context,
        )
        return html_response(html, status)

    def _error(
        self, code: str, status: int = 400, *, csrf: str | None = None, message: str | None = None
    ) -> Response:
        title, detail = ERROR_TEXT.get(code, ERROR_TEXT["failed"])
        return self._page(
            "error.html",
            status,
            title=title,
            detail=message or detail,
            code=code,
            resend=csrf is not None and code == "expired",
            csrf_token=csrf or "",
        )

    def _csrf(self, call: Call) -> str:
        token = call.request.cookies.get(self.names.csrf)
        if not token:
            token = new_csrf_token()
            call.cookies_out.append(self.names.set_landing(self.names.csrf, token, self.path))
        return token

    def _forget(self, call: Call) -> None:
        if self.names.landing in call.request.cookies:
            call.cookies_out.append(self.names.clear_landing(self.names.landing, self.path))

    async def _client(self, call: Call) -> Any:
        return await self.magiclinks.get_client(call.request.cookies.get(self.names.client))

    async def _consume(self, call: Call, token: str, client: Any, preview: LinkPreview) -> Response:
        try:
            result = await self.magiclinks.verify_link(token, client, request=call.info)
        except MagicLinkError as exc:
            self._forget(call)
            return redirect(with_status(preview.redirect_url, exc.code))
        except AuthError as exc:
            return self._page(
                "error.html", 409, title="Something went wrong", detail=exc.long_message
            )
        self._forget(call)
        created = None
        if result.session_token is not None and result.session is not None:
            call.cookies_out.append(self.names.set_session(result.session_token))
            created = result.session.id
        return redirect(with_status(result.redirect_url, "verified", created))

    # -- routes ---------------------------------------------------------------------------------

    async def click(self, call: Call) -> Response:
        """The emailed link. Consumed only for the client that asked (or policy ``allow``)."""
        token = call.request.query.get("token", "")
        if not token or len(token) > 256:
            return self._error("missing", 400)
        client = await self._client(call)
        try:
            preview = await self.magiclinks.inspect_link(token, client)
        except MagicLinkError as exc:
            if exc.redirect_url is not None:  # a dead link whose attempt is known: tell the app
                return redirect(with_status(exc.redirect_url, exc.code))
            preview = None
        if preview is not None and not preview.needs_confirmation and call.request.method == "GET":
            return await self._consume(call, token, client, preview)
        # a HEAD, a stranger, a scanner or a dead link: the token leaves the URL, unconsumed
        call.cookies_out.append(self.names.set_landing(self.names.landing, token, self.path))
        self._csrf(call)
        return redirect(f"{self.path}/confirm")

    async def confirm_page(
        self, call: Call, *, wrong: str | None = None, status: int = 200
    ) -> Response:
        """The page asking for the code shown on the device that asked for the link."""
        token = call.request.cookies.get(self.names.landing, "")
        if not token:
            return self._error("missing", 400)
        client = await self._client(call)
        csrf = self._csrf(call)
        try:
            preview = await self.magiclinks.inspect_link(token, client)
        except MagicLinkError as exc:
            return self._error(exc.code, 410 if exc.code == "expired" else 400, csrf=csrf)
        if not preview.needs_confirmation:
            return await self._consume(call, token, client, preview)
        requested = preview.requested_by
        return self._page(
            "confirm.html",
            status,
            action=ACTIONS.get(preview.kind, "sign in"),
            email_address=preview.email_address,
            device=requested.described,
            ip_address=requested.ip_address or "unknown",
            requested_at=preview.requested_at.strftime("%d %B %Y, %H:%M UTC"),
            csrf_token=csrf,
            wrong=wrong,
            digits=self.magiclinks.settings.confirmation_code_digits,
        )

    def _form_allowed(self, call: Call, data: dict[str, Any]) -> bool:
        return same_origin(
            call.request.scope, self.magiclinks.settings.base_url, allow_missing=True
        ) and csrf_token_matches(call.request, self.names, data.get("csrf_token"))

    async def confirm(self, call: Call) -> Response:
        """The confirmation form: the right code completes the attempt for the other device."""
        data = await call.request.form()
        if not self._form_allowed(call, data):
            return self._page(
                "error.html",
                403,
                title="Please try again",
                detail="This form expired or came from elsewhere. Open the link "
                "from your email again.",
            )
        token = call.request.cookies.get(self.names.landing, "")
        if not token:
            return self._error("missing", 400)
        code = data.get("confirmation_code")
        if not isinstance(code, str) or not code.strip() or len(code) > 16:
            return await self.confirm_page(
                call, wrong="Type the code shown on the other device.", status=422
            )
        client = await self._client(call)
        try:
            preview = await self.magiclinks.inspect_link(token, client)
            await self.magiclinks.verify_link(
                token, client, confirmation_code=code.strip(), request=call.info
            )
        except ConfirmationCodeError as exc:
            return await self.confirm_page(call, wrong=exc.long_message, status=422)
        except MagicLinkError as exc:
            self._forget(call)
            return self._error(exc.code, 410 if exc.code == "expired" else 400)
        except AuthError as exc:
            return self._page(
                "error.html", 409, title="Something went wrong", detail=exc.long_message
            )
        self._forget(call)
        return self._page(
            "done.html",
            action=ACTIONS.get(preview.kind, "sign in"),
            device=preview.requested_by.described,
        )

    async def resend(self, call: Call) -> Response:
        """One click on the expired-link page: a fresh link to the same address."""
        data = await call.request.form()
        if not self._form_allowed(call, data):
            return self._page(
                "error.html",
                403,
                title="Please try again",
                detail="This form expired or came from elsewhere.",
            )
        token = call.request.cookies.get(self.names.landing, "")
        if not token:
            return self._error("missing", 400)
        try:
            # the new link is for the device that asked for the old one: the core reuses its
            # request details, so a confirmation page never names the resending device
            await self.magiclinks.resend_link(token)
        except RateLimitedError as exc:
            return self._page(
                "error.html", 429, title="Please wait a moment", detail=exc.long_message
            )
        except AuthError as exc:
            return self._page(
                "error.html",
                400,
                title="This link can no longer be renewed",
                detail=exc.long_message,
            )
        self._forget(call)
        return self._page("sent.html")
