"""Adapters checked when ``MagicLinks`` is built: async where the service awaits, plain where it
calls.

A sync method where the service awaits one fails only when first used, and looks like something
else: a sync ``Mailer.send`` that delivered, then failed on ``await None``, was retried as a
temporary mail failure (one email per "failure"); a sync ``Storage.find`` read as an outage
forever. An async ``EmailRenderer.render`` "sent" a coroutine object as the email. So each is
refused with a :class:`TypeError` naming the method, once, before anything runs (as hooks are
when registered), and never checked again on the request path.

Which methods must be which is read from the ports' own ``Protocol`` classes: a method declared
``async def`` there must be async on the adapter, any other must not be.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping

from .emails import EmailRenderer
from .ports import Clock, HasNotifier, Mailer, Migratable, Notifier, Storage

_ASYNC_DUNDERS = frozenset({"__aenter__", "__aexit__"})


def is_async_callable(target: object) -> bool:
    """Whether calling ``target`` makes a coroutine: an ``async def`` function or bound method,
    a ``functools.partial`` of one, or an object whose ``__call__`` is one (Starlette decides
    the same way)."""
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or (
        callable(target) and inspect.iscoroutinefunction(getattr(target, "__call__", None))  # noqa: B004
    )


@functools.cache
def port_methods(protocol: type) -> Mapping[str, bool]:
    """The methods ``protocol`` declares, each mapped to whether it is async (properties, such
    as ``Notifier.healthy``, are not methods)."""
    return {
        name: inspect.iscoroutinefunction(value)
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and (not name.startswith("_") or name in _ASYNC_DUNDERS)
    }


def require(adapter: object, what: str, methods: Mapping[str, bool]) -> None:
    """Refuse ``adapter`` (called ``what`` in the message) unless each of ``methods`` is there,
    async where mapped to True and plain where mapped to False.

    :raises TypeError: a method missing, not callable, or of the wrong kind.
    """
    for name, must_be_async in methods.items():
        method = getattr(adapter, name, None)
        if method is None or not callable(method):
            raise TypeError(f"{what} has no {name} method, got {adapter!r}")
        if must_be_async and not is_async_callable(method):
            raise TypeError(f"{what}.{name} must be an async function (async def), got {method!r}")
        if not must_be_async and is_async_callable(method):
            raise TypeError(f"{what}.{name} must be a plain function (def), not async: {method!r}")


def check_storage(storage: object) -> None:
    """Refuse a storage whose ``Storage`` methods are not async (and, where it has them, an
    async ``notifier()`` or a sync ``migrate()``). :raises TypeError:"""
    require(storage, "storage", port_methods(Storage))
    for optional in (HasNotifier, Migratable):
        if isinstance(storage, optional):
            require(storage, "storage", port_methods(optional))


def check_adapters(
    *, mailer: object, notifier: object, clock: object, emails: EmailRenderer
) -> None:
    """Refuse the other adapters of the wrong kind: the mailer's ``send`` (and ``close``, which
    :meth:`MagicLinks.aclose` awaits when there is one), the notifier's methods, the clock's
    ``now`` and the renderer's ``render``. :raises TypeError:"""
    require(mailer, "mailer", port_methods(Mailer))
    if getattr(mailer, "close", None) is not None:
        require(mailer, "mailer", {"close": True})
    require(notifier, "notifier", port_methods(Notifier))
    require(clock, "clock", port_methods(Clock))
    require(emails, "emails", {"render": False})


__all__ = ["check_adapters", "check_storage", "is_async_callable", "port_methods", "require"]
