"""Every security header the package sends, in one place.

``X-Content-Type-Options: nosniff`` is on every response (``http.Response`` adds it), and
``Strict-Transport-Security`` on every response under the middleware's prefix when it is on
(:func:`hsts`); the rest depend on what is answered: JSON, a landing page (one inline script,
by nonce), a hosted page (its own scripts only, styles by nonce), a static file, or an email
shown in the development mailbox. Every Content-Security-Policy says ``object-src 'none'``;
every answer but a static file says ``frame-ancestors 'none'`` and every page
``Cross-Origin-Opener-Policy: same-origin``.
"""

from __future__ import annotations

HSTS_DEFAULT_SECONDS = 31_536_000
"""One year: what ``Strict-Transport-Security`` asks for when ``base_url`` is https."""


def hsts(seconds: int | None, *, https: bool) -> tuple[bytes, bytes] | None:
    """The ``Strict-Transport-Security`` header (raw, for an ASGI message), or None when off.

    :param seconds: ``max-age``; None: a year when ``https``, else off; 0: off.
    :raises ValueError: for a negative ``seconds``.
    """
    if seconds is None:
        seconds = HSTS_DEFAULT_SECONDS if https else 0
    if seconds < 0:
        raise ValueError(f"hsts_seconds must be 0 (off) or more, not {seconds}")
    if seconds == 0:
        return None
    return (b"strict-transport-security", f"max-age={seconds}".encode())


NO_STORE = ("Cache-Control", "no-store")
SIGNED_OUT = ("Clear-Site-Data", '"cache"')
"""The sign-out answer: the browser drops its cache of this site, where pages of the signed-in
person may be kept. Not "cookies": that removes every cookie of the site's registrable domain,
the host app's own and its sibling subdomains' (our two are cleared by name beside this); not
"storage": that would wipe the host app's own local data."""
_FRAMES = ("X-Frame-Options", "DENY")  # for old browsers: frame-ancestors is the rule
# a page opened from another site shares no window with it (no tabnabbing, no frame counting)
_OPENER = ("Cross-Origin-Opener-Policy", "same-origin")

API: list[tuple[str, str]] = [
    NO_STORE,
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; object-src 'none'"),
]
"""The JSON API: never cached (the bodies hold per-client state), never framed or rendered
as a document that could run anything."""

_LANDING_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

LANDING: list[tuple[str, str]] = [
    ("Referrer-Policy", "no-referrer"),  # the link's token must not leak to another site
    NO_STORE,
    _FRAMES,
    _OPENER,
    ("Content-Security-Policy", _LANDING_CSP),
]
"""The link landing's answers: forms and text, no script."""


def landing_page(nonce: str) -> list[tuple[str, str]]:
    """A landing page: as :data:`LANDING`, and its one inline script, allowed by ``nonce`` (a
    form's button that disables itself after the first tap)."""
    csp = f"{_LANDING_CSP}; script-src 'nonce-{nonce}'"
    return [h if h[0] != "Content-Security-Policy" else (h[0], csp) for h in LANDING]


def hosted_page(nonce: str) -> list[tuple[str, str]]:
    """A hosted page: scripts from this site only, inline styles only with ``nonce``."""
    csp = (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data: https:; "
        "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        "object-src 'none'"
    )
    return [
        NO_STORE,
        ("Content-Security-Policy", csp),
        ("Referrer-Policy", "same-origin"),
        _FRAMES,
        _OPENER,
    ]


MAILBOX_EMAIL: list[tuple[str, str]] = [
    (
        "Content-Security-Policy",
        "sandbox allow-popups allow-popups-to-escape-sandbox; "
        "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
        "object-src 'none'",
    ),
    NO_STORE,
]
"""An email's own HTML in the development mailbox: sandboxed, links open a new tab."""


def static_file(etag: str, immutable: bool) -> list[tuple[str, str]]:
    """A static file: cached for a year when asked for by its content version, else briefly."""
    cache = (
        "public, max-age=31536000, immutable"
        if immutable
        else "public, max-age=300, must-revalidate"
    )
    return [("ETag", etag), ("Cache-Control", cache)]
