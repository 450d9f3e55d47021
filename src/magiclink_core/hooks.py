"""Hooks: async callbacks after events, and veto checks before a sign-up or sign-in proceeds."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

from .domain.errors import NotAllowedError
from .domain.events import REFUSALS, AuthEvent, Event
from .domain.models import AttemptKind
from .port_checks import is_async_callable

logger = logging.getLogger("magiclink")

EventHook = Callable[[AuthEvent], Awaitable[None]]
# receives the normalised email address; refuses by returning False or raising NotAllowedError
VetoHook = Callable[[str], Awaitable[bool | None]]
H = TypeVar("H", bound=EventHook)

VETOABLE = (AttemptKind.SIGN_UP, AttemptKind.SIGN_IN)
_VETOED = {AttemptKind.SIGN_UP: Event.SIGN_UP_VETOED, AttemptKind.SIGN_IN: Event.SIGN_IN_VETOED}


def _require_async(hook: Callable[..., object], what: str) -> None:
    """Refuse a sync callable when it is registered, not when it is first called (a sync veto
    would fail every sign-in with a TypeError; a sync event hook would be silently dropped)."""
    if not is_async_callable(hook):
        raise TypeError(f"{what} must be an async function (async def), got {hook!r}")


class Hooks:
    """Registered callbacks. Event hooks run after the change is stored; an exception in one is
    logged and does not undo the change. Veto hooks run before anything is stored."""

    def __init__(self) -> None:
        self._events: dict[Event, list[EventHook]] = defaultdict(list)
        self._vetoes: dict[AttemptKind, list[VetoHook]] = defaultdict(list)

    @property
    def listening(self) -> bool:
        """Whether any event hook is registered. With none, an event that is not a refusal
        (refusals are logged) goes nowhere, and need not be made."""
        return bool(self._events)

    @overload
    def on(self, event: Event | str, hook: EventHook) -> EventHook: ...

    @overload
    def on(self, event: Event | str, hook: None = None) -> Callable[[H], H]: ...

    def on(self, event: Event | str, hook: EventHook | None = None) -> EventHook | Callable[[H], H]:
        """Register ``hook`` for ``event``; without ``hook``, a decorator that does.

        :raises ValueError: an unknown event. :raises TypeError: ``hook`` is not async.
        """
        kind = Event(event)

        def register(function: H) -> H:
            _require_async(function, f"the hook for {kind.value!r}")
            self._events[kind].append(function)
            return function

        return register if hook is None else register(hook)

    def before(self, kind: AttemptKind, hook: VetoHook) -> VetoHook:
        """Register a veto for sign-ups or sign-ins.

        :raises ValueError: not a vetoable kind. :raises TypeError: ``hook`` is not async.
        """
        if kind not in VETOABLE:
            raise ValueError("veto hooks are for sign-ups or sign-ins")
        _require_async(hook, f"the veto hook for {kind.value!r}")
        self._vetoes[kind].append(hook)
        return hook

    async def check(self, kind: AttemptKind, email: str, *, ip_address: str = "") -> None:
        """Run the vetoes of ``kind``; a refusal is an event (``sign_up_vetoed``,
        ``sign_in_vetoed``). :raises NotAllowedError: one of them refused."""
        for hook in self._vetoes.get(kind, ()):
            try:
                allowed = await hook(email) is not False
            except NotAllowedError:
                await self._vetoed(kind, email, ip_address)
                raise
            if not allowed:
                await self._vetoed(kind, email, ip_address)
                raise NotAllowedError(
                    long_message=f"This {kind.value.replace('_', '-')} is not allowed."
                )

    async def _vetoed(self, kind: AttemptKind, email: str, ip_address: str) -> None:
        event = AuthEvent(
            _VETOED[kind], email_address=email, reason="not_allowed", ip_address=ip_address or None
        )
        await self.emit(event)

    async def emit(self, *events: AuthEvent) -> None:
        """Call the hooks of each event in turn; a failing hook is logged and skipped. A refusal
        (:data:`~magiclink_core.domain.events.REFUSALS`) is logged at warning first."""
        for event in events:
            if event.event in REFUSALS:
                _log_refusal(event)
            for hook in self._events.get(event.event, ()):
                try:
                    await hook(event)
                except Exception:
                    logger.exception("hook for %s failed", event.event.value)


def _log_refusal(event: AuthEvent) -> None:
    """One warning line per refusal: what, why, and which records; never a token or a code (no
    event carries one), nor the address (it is in the event, for the app to keep or not)."""
    details = (
        ("reason", event.reason),
        ("ip", event.ip_address),
        ("attempt", event.attempt_id),
        ("user", event.user_id),
        ("session", event.session_id),
        ("client", event.client_id),
    )
    logger.warning(
        "%s %s", event.event.value, " ".join(f"{k}={v}" for k, v in details if v is not None)
    )
