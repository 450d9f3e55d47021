"""The one Request/Response layer of ``magiclink_asgi``, over raw ASGI, so the package imports no
framework. The API, the landing, the hosted pages and the development mailbox all answer with a
:class:`Response`.

A :class:`Request` reads headers, cookies, the query and a size-capped body; a :class:`Response`
is a status, headers and bytes, sent in one go. Every response carries
``X-Content-Type-Options: nosniff``; the rest of the security headers come from ``security.py``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import cached_property
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote

from magiclink_core import AuthError, InvalidRequestError

from .errors import PayloadTooLargeError, UnsupportedMediaTypeError, error_body, error_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Disconnected(Exception):
    """The HTTP client went away while the body was being read."""


def header(scope: Scope, name: str) -> str | None:
    """The first value of a request header (``name`` in lower case), or None."""
    key = name.encode("latin-1")
    for k, v in scope.get("headers", ()):
        if k.lower() == key:
            return bytes(v).decode("latin-1")
    return None


def parse_cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies; a malformed Cookie header reads as fewer (or no) cookies."""
    result: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        if k.lower() != b"cookie":
            continue
        for part in bytes(v).decode("latin-1").split(";"):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(part.strip())
            except CookieError:
                continue
            for name, morsel in jar.items():
                result.setdefault(name, morsel.value)
    return result


def query_of(scope: Scope) -> dict[str, str]:
    """The query string's parameters (the first value of each).

    :raises InvalidRequestError: the query is not UTF-8, as it stands or %-escaped.
    """
    try:
        return _parameters(bytes(scope.get("query_string", b"")).decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequestError(long_message="The query is not UTF-8.") from None


def _parameters(text: str) -> dict[str, str]:
    """``a=1&b=2`` as a dict (the first value of each); a %-escape that is not UTF-8 raises
    UnicodeDecodeError, as the same byte sent raw does, instead of reading as U+FFFD."""
    parsed = parse_qs(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    return {k: v[0] for k, v in parsed.items()}


class Request:
    """One HTTP request: what the API and the landing need of it, nothing more."""

    def __init__(self, scope: Scope, receive: Receive, *, max_body_bytes: int) -> None:
        self.scope = scope
        self.receive = receive
        self.max_body_bytes = max_body_bytes
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.cookies = parse_cookies(scope)

    @cached_property
    def query(self) -> dict[str, str]:
        """The query's parameters, read on first use (so a handler's typed error refuses a
        query that is not UTF-8).

        :raises InvalidRequestError: the query is not UTF-8.
        """
        return query_of(self.scope)

    def header(self, name: str) -> str | None:
        return header(self.scope, name)

    async def body(self) -> bytes:
        """The body, read as it streams in; more than ``max_body_bytes`` is refused (413)."""
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLargeError()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def form(self) -> dict[str, Any]:
        """The body as a dict: JSON (an object) or form-encoded; empty bodies are ``{}``."""
        body = await self.body()
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if not body.strip():
            return {}
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
                raise InvalidRequestError(long_message="The body is not valid JSON.") from None
            if not isinstance(data, dict):
                raise InvalidRequestError(long_message="The body must be a JSON object.")
            if not _unicode(data):
                raise InvalidRequestError(long_message="The body's text is not valid Unicode.")
            return data
        if content_type == "application/x-www-form-urlencoded":
            try:
                return _parameters(body.decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidRequestError(long_message="The form is not UTF-8.") from None
        raise UnsupportedMediaTypeError()


def _unicode(data: Any) -> bool:
    """Whether every string in a parsed JSON value is text UTF-8 can carry: JSON's ``\\ud800``
    escapes decode to lone surrogates, which no answer, digest or database could encode.
    (A loop, not recursion: the parser's depth is near the interpreter's recursion limit.)"""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value):
                return False
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return True


@dataclass
class Response:
    """A complete response; ``headers`` are (name, value) pairs, Set-Cookie ones included."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    def defaults(self, headers: list[tuple[str, str]]) -> Response:
        """Add each of ``headers`` whose name this response does not set already."""
        present = {name.lower() for name, _ in self.headers}
        self.headers.extend(h for h in headers if h[0].lower() not in present)
        return self

    async def __call__(self, send: Send, *, head: bool = False) -> None:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        raw.append((b"x-content-type-options", b"nosniff"))
        if self.content_type is not None:
            raw.append((b"content-type", self.content_type.encode("latin-1")))
        raw.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response (compact, UTF-8), never cached."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, body, "application/json", [("Cache-Control", "no-store")])


def error_response(error: AuthError) -> Response:
    """An error as the API answers it: its status, the JSON error shape, its headers."""
    return json_response(error_body(error), error.status_hint).defaults(error_headers(error))


def html_response(html: str | bytes, status: int = 200) -> Response:
    body = html.encode() if isinstance(html, str) else html
    return Response(status, body, "text/html; charset=utf-8")


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8")


def read_only() -> Response:
    """405 to a method other than GET or HEAD, for what only serves reads (pages, files)."""
    response = text_response("Method not allowed", 405)
    response.add("Allow", "GET, HEAD")
    return response


def redirect(location: str, status: int = 303) -> Response:
    """A redirect, never cached. ``location`` may be an IRI: what is not ASCII (or is a space or
    control character) is percent-encoded as UTF-8, so the header is always valid ASCII."""
    location = quote(location, safe=_URL_SAFE)
    return Response(status, b"", None, [("Location", location), ("Cache-Control", "no-store")])


# what may stand in a URL as it is (RFC 3986 reserved characters and "%" of existing escapes)
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
