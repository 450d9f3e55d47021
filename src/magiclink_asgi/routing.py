"""Routes as data: a method, a path template below the prefix, and the function that answers.

Tables are declared once per module (``api.ROUTES``, ``landing.ROUTES``) and compiled once; the
OpenAPI document is built from the same tables, so a route cannot be served undocumented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from magiclink_core import MagicLinks, NotFoundError

from .errors import MethodNotAllowedError

H = TypeVar("H", bound=Callable[..., object])
VERIFY = "/v1/verify"
"""Where the emailed links point, below the prefix."""
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


def prefix_of(magiclinks: MagicLinks, prefix: str | None) -> str:
    """The routes' prefix: ``prefix`` if given, else the one ``settings.verify_path`` (where the
    emailed links point) implies. :raises ValueError: the two disagree, or no prefix fits."""
    verify_path = magiclinks.settings.verify_path
    if prefix is None:
        if not verify_path.endswith(VERIFY) or not verify_path.removesuffix(VERIFY).strip("/"):
            raise ValueError(
                f"settings.verify_path {verify_path!r} must be <prefix>/v1/verify (such as "
                "/auth/v1/verify) for the middleware to serve the emailed links"
            )
        return verify_path.removesuffix(VERIFY)
    if not prefix.strip("/"):
        raise ValueError("prefix cannot be empty: the app's own routes need the rest")
    prefix = "/" + prefix.strip("/")
    if verify_path != f"{prefix}{VERIFY}":
        raise ValueError(
            f"prefix {prefix!r} does not match settings.verify_path {verify_path!r}: the "
            f"emailed links would point elsewhere; give the prefix once, in "
            f"Settings(verify_path='{prefix}{VERIFY}'), and leave prefix= out"
        )
    return prefix
