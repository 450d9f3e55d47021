"""How tokens travel: the client and session cookies, and CSRF protection of state changes.

Both cookies hold random tokens that the core stores only as keyed digests. They are
``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and over https ``Secure`` with the ``__Host-`` prefix.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import SimpleCookie

from magiclink_core import Settings, origin_of

from .http import Request, Scope, header

LANDING_GRACE = timedelta(hours=1)
"""How much longer than a link works the landing keeps its token and CSRF cookies (the token
signs nobody in once the link expired; it only lets this device ask for a new one)."""


def serialise_cookie(
    name: str,
    value: str,
    *,
    path: str = "/",
    max_age: int | None = None,
    secure: bool = False,
    http_only: bool = True,
    same_site: str = "Lax",
) -> str:
    """One Set-Cookie value (``max_age=0`` deletes the cookie)."""
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = path
    if max_age is not None:
        morsel["max-age"] = max_age
    morsel["secure"] = secure
    morsel["httponly"] = http_only
    morsel["samesite"] = same_site
    return morsel.OutputString()


@dataclass(frozen=True)
class CookieNames:
    """The cookie names in use, how long each lives, and how to write them (resolved once, in
    the middleware, from the core's settings: the cookies live as long as what they hold)."""

    secure: bool
    client: str
    session: str
    landing: str
    csrf: str
    sent_on: str
    client_max_age: int
    session_max_age: int
    landing_max_age: int

    @classmethod
    def build(cls, settings: Settings, *, secure: bool) -> CookieNames:
        host = "__Host-" if secure else ""
        # the landing cookies are scoped to the landing path, so they cannot be __Host-
        tail = "__Secure-" if secure else ""
        return cls(
            secure=secure,
            client=f"{host}magiclink_client",
            session=f"{host}magiclink_session",
            landing=f"{tail}magiclink_link",
            csrf=f"{tail}magiclink_csrf",
            # the hosted pages' mark of where a signed-in visitor was just sent (their path)
            sent_on=f"{tail}magiclink_sent_on",
            client_max_age=int(settings.client_ttl.total_seconds()),
            session_max_age=int(settings.session_lifetime.total_seconds()),
            # the landing holds a link's token a little longer than the link can work: a code
            # form left open past the link's end is then told the link expired, and offered a
            # new one, instead of being refused as a form that came from elsewhere
            landing_max_age=int((settings.link_ttl + LANDING_GRACE).total_seconds()),
        )

    def set_client(self, token: str) -> str:
        return serialise_cookie(self.client, token, max_age=self.client_max_age, secure=self.secure)

    def set_session(self, token: str) -> str:
        return serialise_cookie(
            self.session, token, max_age=self.session_max_age, secure=self.secure
        )

    def clear_session(self) -> str:
        return serialise_cookie(self.session, "", max_age=0, secure=self.secure)

    def signed_out(self) -> list[str]:
        """What a browser signing itself out drops: its session and its client (which would
        still show the signed-out person's sign-in to whoever uses the browser next)."""
        return [
            self.clear_session(),
            serialise_cookie(self.client, "", max_age=0, secure=self.secure),
        ]

    def set_landing(self, name: str, value: str, path: str) -> str:
        return serialise_cookie(
            name, value, path=path, max_age=self.landing_max_age, secure=self.secure
        )

    def clear_landing(self, name: str, path: str) -> str:
        return serialise_cookie(name, "", path=path, max_age=0, secure=self.secure)

    def set_csrf(self, token: str, path: str) -> str:
        """A hosted page's CSRF cookie (the sign-out form's), on its path only, for as long as
        the browser runs: the page may stay open a while before its form is sent."""
        return serialise_cookie(self.csrf, token, path=path, secure=self.secure)

    def set_sent_on(self, mark: str, path: str, max_age: int) -> str:
        """The hosted pages' sent-on mark (``max_age=0`` deletes it)."""
        return serialise_cookie(self.sent_on, mark, path=path, max_age=max_age, secure=self.secure)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_token_matches(request: Request, names: CookieNames, submitted: object) -> bool:
    """Double-submit: the form's token equals the one in the (HttpOnly) CSRF cookie."""
    expected = request.cookies.get(names.csrf, "")
    return (
        isinstance(submitted, str)
        and bool(expected)
        and hmac.compare_digest(submitted.encode(), expected.encode())
    )


def same_origin(scope: Scope, base_url: str, *, allow_missing: bool) -> bool:
    """Whether a state-changing request comes from our own pages.

    A same-origin ``Origin`` (the configured ``base_url`` or the request's own Host) passes, as
    does ``Sec-Fetch-Site: same-origin|none``. With neither header (not a browser, or a very old
    one), ``allow_missing`` decides: true for JSON bodies, which no cross-site form can send.
    """
    origin = header(scope, "origin")
    if origin is not None and origin != "null":
        allowed = {origin_of(base_url)}
        host = header(scope, "host")
        if host:
            allowed.add(origin_of(f"{scope.get('scheme', 'http')}://{host}"))
        try:
            return origin_of(origin) in allowed
        except ValueError:  # a malformed Origin (a bad port) is not ours
            return False
    site = header(scope, "sec-fetch-site")
    if site is not None:
        return site in {"same-origin", "none"}
    return allow_missing and origin is None
