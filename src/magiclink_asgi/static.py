"""The package's static files (the browser client, the stylesheet), served from memory.

A fixed set of names is loaded once from ``static/``: no request path ever reaches the disk.
Each file is versioned by its content (``?v=`` in its URL, and its ETag), so a versioned URL may
be cached for a year.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from . import security
from .http import Response, text_response

_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str

    @property
    def version(self) -> str:
        return self.etag.strip('"')


def load() -> dict[str, StaticFile]:
    """Every servable file of ``static/``, by name."""
    files: dict[str, StaticFile] = {}
    root = resources.files("magiclink_asgi") / "static"
    for entry in root.iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if not entry.is_file() or suffix not in _CONTENT_TYPES or not _STATIC_NAME.match(name):
            continue
        body = entry.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:16]
        files[name] = StaticFile(body, _CONTENT_TYPES[suffix], f'"{digest}"')
    return files


def answer(item: StaticFile | None, *, version: str | None, if_none_match: str | None) -> Response:
    """The response for one static file (404 for an unknown name, 304 when unchanged)."""
    if item is None:
        return text_response("Not found", 404)
    headers = security.static_file(item.etag, immutable=version == item.version)
    if item.etag in [t.strip() for t in (if_none_match or "").split(",")]:
        return Response(304, b"", None, headers)
    return Response(200, item.body, item.content_type, headers)
