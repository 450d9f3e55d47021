"""The link landing: where the emailed link points (``GET /v1/verify?token=…``).

The starting client's click is consumed and redirected. Any other client (a phone, a mail
scanner, a link preview) consumes nothing on GET or HEAD, under every policy: the token moves
out of the URL into a short-lived HttpOnly cookie scoped to the landing, and a confirmation page
asks for one tap (policy ``allow``) or the code the starting device shows (``confirm``); only
that form's POST consumes, and it answers with a redirect (Post/Redirect/Get) so that Back and
reload never send it again. A link clicked again by the client that used it (a double tap, back
and reload, a retry after a lost answer) gets the same result again. The rules themselves are
the core's (``open_link``, ``inspect_link``, ``verify_link``); this module only carries tokens
and renders pages, and every page that ends a way offers the next one.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from magiclink_core import (
    AttemptKind,
    AuthError,
    Client,
    ConfirmationCodeError,
    ErrorCode,
    InvalidStateError,
    LinkPreview,
    LinkResult,
    LinkStillWorksError,
    MagicLinkError,
    MagicLinks,
    NotFoundError,
    RateLimitedError,
    StorageUnavailableError,
    TooManyConfirmationCodesError,
    is_link_token,
)

from .api import Call
from .cookies import CookieNames, csrf_token_matches, new_csrf_token, same_origin
from .errors import MethodNotAllowedError
from .http import Disconnected, Response, html_response, redirect
from .routing import Route, Router
from .security import LANDING, landing_page
from .templates import render

ACTIONS = {
    AttemptKind.SIGN_IN: "sign in",
    AttemptKind.SIGN_UP: "create an account",
    AttemptKind.EMAIL_ADDRESS: "verify an email address",
}

# what the landing's error page says, per way a link fails (the copy, not the status: that is
# the error's own status_hint)
ERROR_TEXT: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.EXPIRED: ("This link has expired", "Links work for a short time only."),
    ErrorCode.FAILED: (
        "This link no longer works",
        "It was used already, replaced by a newer one, or is not valid.",
    ),
    ErrorCode.CLIENT_MISMATCH: (
        "Open this link on the device that asked for it",
        "For your safety, this link works only in the browser where you asked for it.",
    ),
}
MISSING = ("Open the link from your email", "This page needs the link from the email we sent you.")
TYPE_THE_CODE = "Type the code shown on the other device."
MALFORMED = ("This link is not valid", "It may have been cut short: open it again from the email.")


def with_status(url: str, status: str, session_id: str | None = None) -> str:
    """``url`` with ``__magiclink_status`` (and ``__magiclink_created_session``) added at the
    end of its query. The rest of the URL stays byte for byte (the app's own escapes, blank
    values and separators are its business), except parameters named ``__magiclink_…`` it
    carried: they are the landing's to set, so they are replaced."""
    rest, hash_sign, fragment = url.partition("#")
    path, _, query = rest.partition("?")
    kept = [pair for pair in query.split("&") if not _ours(pair)] if query else []
    added = [f"__magiclink_status={quote_plus(status)}"]
    if session_id:
        added.append(f"__magiclink_created_session={quote_plus(session_id)}")
    return f"{path}?{'&'.join([*kept, *added])}{hash_sign}{fragment}"


def _ours(pair: str) -> bool:
    """Whether a query's ``name=value`` is one of the landing's parameters (however escaped)."""
    return unquote_plus(pair.partition("=")[0]).startswith("__magiclink_")


class Landing:
    """``/v1/verify``, ``/v1/verify/confirm`` (GET, POST), ``/v1/verify/resend`` (POST) and
    ``/v1/verify/sent``."""

    def __init__(self, magiclinks: MagicLinks, prefix: str, names: CookieNames) -> None:
        self.magiclinks = magiclinks
        self.prefix = prefix
        self.names = names
        self.path = f"{prefix}/v1/verify"
        self.confirm_url = f"{self.path}/confirm"  # the confirmation page, and its form's target
        self.sent_url = f"{self.path}/sent"  # "check your email", after a resend
        self.sign_in_url: str | None = None
        """Where a dead end sends a person to start again (the hosted sign-in page, when
        served); the app's home page is offered always."""
        self.sign_up_url: str | None = None
        """Where a sign-up's link disabled by wrong codes sends a person to start again."""
        self.user_profile_url: str | None = None
        """Where an added address's link disabled by wrong codes sends a person."""

    async def handle(self, call: Call, sub: str) -> Response:
        """Answer one landing request; every answer carries the landing headers."""
        try:
            handler, _ = ROUTER.match(call.request.method, sub)
            response = await handler(self, call)
        except MethodNotAllowedError as exc:
            response = self._page(
                "error.html",
                exc.status_hint,
                title="Not allowed",
                detail="This page does not take that kind of request.",
            )
            response.add("Allow", ", ".join(exc.allow))
        except NotFoundError:
            response = self._missing(404)
        except StorageUnavailableError as exc:
            response = self.unavailable(call, exc)
        except Disconnected:
            response = self._trouble(400, "The request was cut short.")
        except AuthError as exc:  # a body too large or of the wrong type
            response = self._trouble(exc.status_hint, exc.long_message)
        return response.defaults(LANDING)

    # -- pages ----------------------------------------------------------------------------------

    def _page(self, template: str, status: int = 200, **context: Any) -> Response:
        nonce = secrets.token_urlsafe(16)
        settings = self.magiclinks.settings
        html = render(
            f"landing/{template}",
            app_name=settings.app_name,
            css_url=f"{self.prefix}/static/magiclink.css",
            prefix=self.prefix,
            nonce=nonce,
            home_url=f"{settings.base_url}/",
            sign_in_url=self.sign_in_url,
            **context,
        )
        return html_response(html, status).defaults(landing_page(nonce))

    def _trouble(self, status: int, detail: str, title: str = "Something went wrong") -> Response:
        return self._page("error.html", status, title=title, detail=detail)

    def _limited(self, error: RateLimitedError) -> Response:
        response = self._trouble(error.status_hint, error.long_message, title="Please wait")
        response.add("Retry-After", str(error.seconds))
        return response

    def unavailable(self, call: Call, error: StorageUnavailableError) -> Response:
        """A storage outage: nothing more than "temporarily unavailable" (the details are in
        the log), and a way to try again. A GET is tried again as it is (the link works once
        the storage is back); a form goes back to its page."""
        retry = "" if call.request.method == "GET" else self.confirm_url
        response = self._page(
            "error.html",
            error.status_hint,
            title="Temporarily unavailable",
            detail="We could not finish this just now. Please try again in a few seconds.",
            code=error.code.value,
            retry_url=retry,
        )
        response.add("Retry-After", str(error.retry_after_seconds))
        return response.defaults(LANDING)

    def _missing(self, status: int = 400) -> Response:
        title, detail = MISSING
        return self._page("error.html", status, title=title, detail=detail, code="missing")

    def _malformed(self) -> Response:
        title, detail = MALFORMED
        return self._page("error.html", 400, title=title, detail=detail, code="malformed")

    def _dead(self, error: MagicLinkError, *, csrf: str | None = None) -> Response:
        """The page for a link that did not work; an expired one offers a resend. A link
        disabled by wrong codes says so (to the device that typed them, as to the one that
        asked), and the way to start again is its attempt's own."""
        title, detail = ERROR_TEXT.get(error.code, ERROR_TEXT[ErrorCode.FAILED])
        again: dict[str, str | None] = {}
        if isinstance(error, TooManyConfirmationCodesError):
            detail = error.long_message
            text, url = self._start_again(error.kind)
            again = {"again_text": text, "again_url": url}
        return self._page(
            "error.html",
            error.status_hint,
            title=title,
            detail=detail,
            code=error.code.value,
            resend=csrf is not None and error.code is ErrorCode.EXPIRED,
            csrf_token=csrf or "",
            **again,
        )

    def _start_again(self, kind: AttemptKind) -> tuple[str, str | None]:
        """Where a person starts an attempt of ``kind`` again, in words, and its URL (None
        without the hosted pages)."""
        if kind is AttemptKind.SIGN_UP:
            return "Sign up again", self.sign_up_url
        if kind is AttemptKind.EMAIL_ADDRESS:
            return "Go to your account", self.user_profile_url
        return "Sign in again", self.sign_in_url

    def _csrf(self, call: Call) -> str:
        token = call.request.cookies.get(self.names.csrf)
        if not token:
            token = new_csrf_token()
            call.cookies_out.append(self.names.set_landing(self.names.csrf, token, self.path))
        return token

    def _forget(self, call: Call) -> None:
        if self.names.landing in call.request.cookies:
            call.cookies_out.append(self.names.clear_landing(self.names.landing, self.path))

    async def _client(self, call: Call) -> Client | None:
        return await self.magiclinks.get_client(call.request.cookies.get(self.names.client))

    async def _device(self, call: Call) -> Client:
        """The client of a device about to confirm, made (and its cookie set) if it has none:
        so a second tap or a reload from this device is known as the one that confirmed."""
        client = await self._client(call)
        if client is None:
            client, token = await self.magiclinks.create_client()
            call.cookies_out.append(self.names.set_client(token))
        return client

    def _completed(self, call: Call, result: LinkResult[Any], *, posted: bool = False) -> Response:
        """A link used now, or again by the client that used it: its session's cookie set (if
        it is this client's) and the way on. ``posted``: the answer to the confirm form, where
        the done page is reached by a redirect (Post/Redirect/Get)."""
        created = None
        if result.session_token is not None and result.session is not None:
            call.cookies_out.append(self.names.set_session(result.session_token))
            created = result.session.id
        elif result.session is not None and result.session == call.session:
            created = result.session.id  # signed in to it already: the cookie it has works
        if result.repeated:
            return self._again(result, created, posted=posted)
        self._forget(call)
        return redirect(with_status(result.redirect_url, "verified", created))

    def _again(
        self, result: LinkResult[Any], created: str | None, *, posted: bool = False
    ) -> Response:
        """A link used already by this very client (or for it), reached again: said so."""
        if not result.verified_from_the_same_client and created is None:
            # the device that confirmed for another one: the same success page again
            if posted:
                return redirect(self.confirm_url)
            return self._done(result.kind, result.verification.requested_by.described)
        return self._page(
            "signed_in.html",
            signed_in=created is not None,
            continue_url=with_status(result.redirect_url, "verified", created),
        )

    def _done(self, kind: AttemptKind, device: str) -> Response:
        return self._page("done.html", action=ACTIONS.get(kind, "sign in"), device=device)

    async def _open(
        self, call: Call, token: str, client: Client | None
    ) -> LinkPreview | LinkResult[Any]:
        """The link opened (it completes for the client that asked, or clicks again for the
        one that used it), or only read, for a HEAD: a HEAD never consumes a link, nor writes
        anything (no session cookie renewed, no client made)."""
        if call.request.method == "HEAD":
            return await self.magiclinks.inspect_link(token, client)
        return await self.magiclinks.open_link(
            token, client, request=call.info, signed_in=call.session
        )

    # -- routes ---------------------------------------------------------------------------------

    async def click(self, call: Call) -> Response:
        """The emailed link. Consumed only for the client that asked (or policy ``allow``)."""
        token = call.request.query.get("token", "")
        if not token:
            return self._missing()
        if not is_link_token(token):  # refused before it reaches any header or cookie
            return self._malformed()
        client = await self._client(call)
        opened: LinkPreview | LinkResult[Any] | None
        try:
            opened = await self._open(call, token, client)
        except MagicLinkError as exc:
            if exc.redirect_url is not None:  # a dead link whose attempt is known: tell the app
                return redirect(with_status(exc.redirect_url, exc.code.value))
            opened = None
        except StorageUnavailableError:
            raise
        except AuthError as exc:  # lost every race with concurrent clicks
            return self._trouble(exc.status_hint, exc.long_message)
        if isinstance(opened, LinkResult):
            return self._completed(call, opened)
        # a HEAD, a stranger, a scanner or a dead link: the token leaves the URL, unconsumed
        call.cookies_out.append(self.names.set_landing(self.names.landing, token, self.path))
        self._csrf(call)
        return redirect(self.confirm_url)

    async def confirm_page(self, call: Call) -> Response:
        """The page asking for the code shown on the device that asked for the link. The form's
        POST answers a wrong code or a confirmation with a redirect back here (``?retry=wrong``
        for the former), so Back and reload never send the form again; the tries left are read
        from the link, not from the URL."""
        after_wrong_code = call.request.query.get("retry") == "wrong"
        return await self._confirm_form(call, after_wrong_code=after_wrong_code)

    async def _confirm_form(
        self,
        call: Call,
        *,
        wrong: str | None = None,
        after_wrong_code: bool = False,
        status: int = 200,
    ) -> Response:
        """The confirmation page; ``wrong``: why the form is shown again; ``after_wrong_code``:
        it says the tries the link has left."""
        token = call.request.cookies.get(self.names.landing, "")
        if not token:
            return self._missing()
        client = await self._client(call)
        csrf = self._csrf(call)
        opened: LinkPreview | LinkResult[Any]
        try:
            opened = await self._open(call, token, client)
        except MagicLinkError as exc:
            return self._dead(exc, csrf=csrf)
        except StorageUnavailableError:
            raise
        except AuthError as exc:
            return self._trouble(exc.status_hint, exc.long_message)
        if isinstance(opened, LinkResult):  # the client that asked, here by the cookie
            return self._completed(call, opened)
        preview = opened
        if client is None and call.request.method != "HEAD":  # a HEAD makes no client
            await self._device(call)
        requested = preview.requested_by
        if after_wrong_code and preview.code_tries_left is not None:
            wrong = ConfirmationCodeError(preview.code_tries_left).long_message
        return self._page(
            "confirm.html",
            status,
            needs_code=preview.needs_code,
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

    def _form_refused(self, detail: str) -> Response:
        return self._trouble(403, detail, title="Please try again")

    async def confirm(self, call: Call) -> Response:
        """The confirmation form: the right code completes the attempt for the other device."""
        data = await call.request.form()
        if not self._form_allowed(call, data):
            return self._form_refused(
                "This form expired or came from elsewhere. Open the link from your email again."
            )
        token = call.request.cookies.get(self.names.landing, "")
        if not token:
            return self._missing()
        client = await self._device(call)
        code: str | None = None
        if "confirmation_code" in data:  # the page asks for it under policy confirm only
            typed = data.get("confirmation_code")
            if not isinstance(typed, str) or not typed.strip() or len(typed) > 16:
                # not a code (the page's field requires one): refused as it is, nothing counted
                return await self._confirm_form(call, wrong=TYPE_THE_CODE, status=422)
            code = typed.strip()
        try:
            # one read: a used link, this client's own link or a confirmed one, judged at once
            result = await self.magiclinks.verify_link(
                token, client, confirmation_code=code, request=call.info, signed_in=call.session
            )
        except InvalidStateError:  # policy confirm, and the form carried no code
            return await self._confirm_form(call, wrong=TYPE_THE_CODE, status=422)
        except ConfirmationCodeError:  # counted on the link: the page reads what is left
            return redirect(f"{self.confirm_url}?retry=wrong")
        except RateLimitedError as exc:
            return self._limited(exc)
        except MagicLinkError as exc:
            if code is None or not is_link_token(token):
                # a tap without a code (answered at once, as a form without one), or a cookie
                # that never held a link: no page to come back to
                self._forget(call)
                return self._dead(exc)
            # the last wrong code, or a link that died while the form was open: the page saying
            # so is the confirmation page's (it reads the link, and offers a resend when the
            # link expired), reached by a redirect like the answer to every other code
            return redirect(self.confirm_url)
        except StorageUnavailableError:
            raise
        except AuthError as exc:
            return self._trouble(exc.status_hint, exc.long_message)
        if result.repeated or result.verified_from_the_same_client:
            return self._completed(call, result, posted=True)
        # the landing cookie stays (no longer than the link could work): the confirmation page
        # finds the link done by this device and shows the done page, after this redirect and
        # on every later tap, Back or reload
        return redirect(self.confirm_url)

    async def resend(self, call: Call) -> Response:
        """One click on the expired-link page: a fresh link to the same address. A link that
        still works is not replaced: the answer is a redirect to its confirmation page; when a
        newer link works (a double tap: the first tap sent it), "check your email" again."""
        data = await call.request.form()
        if not self._form_allowed(call, data):
            return self._form_refused("This form expired or came from elsewhere.")
        token = call.request.cookies.get(self.names.landing, "")
        if not token:
            return self._missing()
        try:
            # the new link is for the device that asked for the old one: the core reuses its
            # request details, so a confirmation page never names the resending device
            await self.magiclinks.resend_link(token, request=call.info)
        except LinkStillWorksError as exc:
            if not exc.newer:  # nothing to renew: the link's own page (its form) again
                return redirect(self.confirm_url)
            # a newer link is in the inbox (a second tap finds the first one's): said the same
        except RateLimitedError as exc:
            return self._limited(exc)
        except StorageUnavailableError:
            raise
        except AuthError as exc:
            return self._trouble(400, exc.long_message, title="This link can no longer be renewed")
        self._forget(call)
        # Post/Redirect/Get: a reload or Back shows the page again and sends nothing
        return redirect(self.sent_url)

    async def sent(self, call: Call) -> Response:
        """Where a resend lands: "check your email" (it reads nothing and holds no state)."""
        return self._page("sent.html")


Handler = Callable[[Landing, Call], Awaitable[Response]]

ROUTES: list[Route[Handler]] = [
    Route("GET", "/v1/verify", Landing.click),
    Route("GET", "/v1/verify/confirm", Landing.confirm_page),
    Route("POST", "/v1/verify/confirm", Landing.confirm),
    Route("POST", "/v1/verify/resend", Landing.resend),
    Route("GET", "/v1/verify/sent", Landing.sent),
]
ROUTER: Router[Handler] = Router(ROUTES)
