"""Redirect targets: only http(s) URLs on an allowlisted origin, or a path on the app's own."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

from .errors import InvalidRedirectError

_MAX_URL_LENGTH = 2048


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute http(s) URL, lower-cased, default port dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None or (scheme, port) in {("http", 80), ("https", 443)}:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def check_redirect_url(url: str, *, base_url: str, allowed_origins: Iterable[str]) -> str:
    """The absolute URL to redirect to, or :class:`InvalidRedirectError`.

    A path (``/welcome``) is resolved against ``base_url``. Scheme-relative (``//evil.example``),
    backslash tricks, credentials in the URL, control characters and non-http schemes
    (``javascript:``, ``data:``) are refused.
    """
    if not isinstance(url, str):
        raise InvalidRedirectError(long_message="The redirect URL is missing or too long.")
    return _checked(url, base_url, tuple(allowed_origins))


@lru_cache(maxsize=1024)
def _checked(url: str, base_url: str, allowed_origins: tuple[str, ...]) -> str:
    """The rule itself, remembered for the URLs seen lately (an app redirects to a handful):
    parsing them took a twentieth of a sign-in. A refusal raises, and is never remembered."""
    if not isinstance(url, str) or not url or len(url) > _MAX_URL_LENGTH:
        raise InvalidRedirectError(long_message="The redirect URL is missing or too long.")
    if any(
        ord(ch) < 0x21 or ch == "\x7f" or ch == "\\" or "\ud800" <= ch <= "\udfff" for ch in url
    ):
        raise InvalidRedirectError(long_message="The redirect URL contains forbidden characters.")
    if url.startswith("/") and not url.startswith("//"):
        url = urljoin(base_url, url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise InvalidRedirectError(long_message="The redirect URL is malformed.") from exc
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise InvalidRedirectError(long_message="The redirect URL must be an absolute http(s) URL.")
    if parts.username is not None or parts.password is not None:
        raise InvalidRedirectError(long_message="The redirect URL must not carry credentials.")
    allowed = {origin_of(o) for o in allowed_origins} | {origin_of(base_url)}
    if origin_of(url) not in allowed:
        raise InvalidRedirectError(
            long_message=f"Redirects are allowed only to {', '.join(sorted(allowed))}."
        )
    return url
