"""Routes as data: a method, a path template below the prefix, and the function that answers.

Tables are declared once per module (``api.ROUTES``, ``landing.ROUTES``) and compiled once; the
OpenAPI document is built from the same tables, so a route cannot be served undocumented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from magiclink_core import NotFoundError

from .errors import MethodNotAllowedError

H = TypeVar("H", bound=Callable[..., object])
_ID = r"(?P<id>[A-Za-z0-9_\-]{1,128})"


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    method: str
    template: str  # "/v1/client/sign_ins/{id}"
    handler: H

    @property
    def name(self) -> str:
        """The operation's name (the handler's), also its OpenAPI ``operationId``."""
        return getattr(self.handler, "__name__", "")


class Router(Generic[H]):
    """Finds the handler of a method and path among ``routes``."""

    def __init__(self, routes: Sequence[Route[H]]) -> None:
        by_template: dict[str, dict[str, H]] = {}
        for route in routes:
            by_template.setdefault(route.template, {})[route.method] = route.handler
        self._compiled = [
            (re.compile("^" + re.escape(t).replace(re.escape("{id}"), _ID) + "/?$"), methods)
            for t, methods in by_template.items()
        ]

    def match(self, method: str, path: str) -> tuple[H, dict[str, str]]:
        """The handler and path parameters. HEAD is answered as GET.

        :raises NotFoundError: no such path. :raises MethodNotAllowedError: not that method.
        """
        for pattern, methods in self._compiled:
            found = pattern.match(path)
            if found is None:
                continue
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                raise MethodNotAllowedError(method, list(methods))
            return handler, found.groupdict()
        raise NotFoundError(long_message="No such endpoint.")
