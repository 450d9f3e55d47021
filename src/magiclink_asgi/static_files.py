"""The static files the hosted pages serve under ``{prefix}/static/``, read once when
:class:`~magiclink_asgi.pages.HostedPages` is built: their names, bytes, types and ETags.

``magiclink.js`` is assembled here rather than stored. Its source is the folder
``static/magiclink/``: parts of ONE ES module, each holding one job (errors, the wire, the
resources, the client entry point, the components' base and helpers, one file per element
family), which :func:`assemble_client` joins in the order of :data:`CLIENT_PARTS`, the manifest
and the one place that order is declared. The parts are fragments sharing one module scope, not
modules importing each other, because:

- apps import ``{prefix}/static/magiclink.js`` and its names; that URL, its exports and its one
  request stay as they were, and the module still finds its prefix from its own URL
  (``import.meta.url``), which only the file at that URL can do;
- nothing is built, at install or anywhere else: joining files in a fixed order needs no bundler,
  and the ``export`` statements stay next to the code they export;
- the joined bytes are the same on every load (the parts' bytes, in manifest order, separated by
  one blank line), so the ETag and the ``?v=`` of :meth:`HostedPages.static_url`, both a digest
  of those bytes, change exactly when a part does.

The price is that a part is not a module of its own: a name declared in one part is used by the
parts after it, and a top-level statement that runs at load (``class X extends Y``, a ``const``
initialiser) needs the parts it names earlier in the manifest. ``tests/asgi/test_static_files.py``
loads the assembled module in node to catch a part put in the wrong place.

Only the names :func:`load_static_files` returns are routes: the files directly in ``static/``
and the assembled module. Nothing in a subfolder is ever served, so a part cannot be fetched on
its own, and a stray ``static/magiclink.js`` is refused instead of shadowing the assembly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from . import security
from .http import Response, Scope, header, query_of, read_only, text_response

__all__ = [
    "CLIENT_MODULE",
    "CLIENT_PARTS",
    "CLIENT_PARTS_FOLDER",
    "StaticFile",
    "answer",
    "assemble_client",
    "load_static_files",
    "serve",
]

_CONTENT_TYPES: Final = {
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

CLIENT_MODULE: Final = "magiclink.js"
"""The name the assembled browser client is served under."""

CLIENT_PARTS_FOLDER: Final = "magiclink"
"""The folder of ``static/`` holding the client's parts."""

CLIENT_PARTS: Final = (
    "prelude.js",  # the module's overview and shared constants
    "errors.js",
    "transport.js",
    "resource-base.js",
    "resources.js",
    "client.js",
    "component-helpers.js",
    "component-base.js",
    "auth-flow-element.js",
    "verification-element.js",
    "sign-out-element.js",
    "user-profile-element.js",
    "define-elements.js",  # names every element class: last
)
"""The manifest: the parts of ``magiclink.js``, in the order they are joined."""


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One static file as served: its bytes, ``Content-Type`` and (quoted) ETag."""

    body: bytes
    content_type: str
    etag: str

    @property
    def version(self) -> str:
        """The content version put in URLs (``?v=``): the ETag without its quotes."""
        return self.etag.strip('"')

    @classmethod
    def of(cls, name: str, body: bytes) -> StaticFile:
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(body, _CONTENT_TYPES[_suffix(name)], f'"{digest}"')


def _static_root() -> Traversable:
    return resources.files("magiclink_asgi") / "static"


def _suffix(name: str) -> str:
    return name[name.rfind(".") :] if "." in name else ""


def assemble_client() -> bytes:
    """The browser client as served: the parts of :data:`CLIENT_PARTS`, in that order, each
    ending in a newline, separated by one blank line."""
    folder = _static_root() / CLIENT_PARTS_FOLDER
    texts: list[bytes] = []
    for name in CLIENT_PARTS:
        part = folder / name
        if not part.is_file():
            raise RuntimeError(
                f"static/{CLIENT_PARTS_FOLDER}/{name} is listed in CLIENT_PARTS but missing"
            )
        text = part.read_bytes()
        texts.append(text if text.endswith(b"\n") else text + b"\n")
    return b"\n".join(texts)


def load_static_files() -> dict[str, StaticFile]:
    """Every static route: the files directly in ``static/`` (of a known type) and the
    assembled ``magiclink.js``.

    :raises RuntimeError: when ``static/`` holds a file of an assembled module's name, or a part
        listed in the manifest is missing.
    """
    files: dict[str, StaticFile] = {}
    for entry in _static_root().iterdir():
        name = entry.name
        if entry.is_file() and _suffix(name) in _CONTENT_TYPES and _STATIC_NAME.match(name):
            files[name] = StaticFile.of(name, entry.read_bytes())
    if CLIENT_MODULE in files:
        raise RuntimeError(
            f"static/{CLIENT_MODULE} would shadow the module assembled from "
            f"static/{CLIENT_PARTS_FOLDER}/: move its code into the parts and delete it"
        )
    files[CLIENT_MODULE] = StaticFile.of(CLIENT_MODULE, assemble_client())
    return files


def answer(item: StaticFile | None, *, version: str | None, if_none_match: str | None) -> Response:
    """The response for one static file (404 for an unknown name, 304 when unchanged); cached
    for a year when asked for by its content version."""
    if item is None:
        return text_response("Not found", 404)
    headers = security.static_file(item.etag, immutable=version == item.version)
    if item.etag in [t.strip() for t in (if_none_match or "").split(",")]:
        return Response(304, b"", None, headers)
    return Response(200, item.body, item.content_type, headers)


def serve(files: dict[str, StaticFile], scope: Scope, name: str) -> Response:
    """The response to a request for static file ``name`` (the path after ``/static/``): GET and
    HEAD only (405 otherwise), versioned by the request's ``?v=``, 304 for its If-None-Match."""
    if scope["method"] not in {"GET", "HEAD"}:
        return read_only()
    return answer(
        files.get(name),
        version=query_of(scope).get("v"),
        if_none_match=header(scope, "if-none-match"),
    )
