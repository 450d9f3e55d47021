"""Hooks: async callbacks after events, and veto checks before a sign-up or sign-in proceeds."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from .domain.errors import NotAllowedError

logger = logging.getLogger("magiclink")


class Event(StrEnum):
    USER_CREATED = "user_created"
    SIGN_UP_COMPLETED = "sign_up_completed"
    SIGN_IN_COMPLETED = "sign_in_completed"
    EMAIL_ADDRESS_VERIFIED = "email_address_verified"
    SESSION_CREATED = "session_created"
    SESSION_ENDED = "session_ended"


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """What happened. Fields not relevant to an event are None."""

    event: Event
    user_id: str | None = None
    session_id: str | None = None
    email_address: str | None = None
    attempt_id: str | None = None
    client_id: str | None = None


EventHook = Callable[[AuthEvent], Awaitable[None]]
# receives the normalised email address; refuses by returning False or raising NotAllowedError
VetoHook = Callable[[str], Awaitable[bool | None]]


class Hooks:
    """Registered callbacks. Event hooks run after the change is stored; an exception in one is
    logged and does not undo the change. Veto hooks run before anything is stored."""

    def __init__(self) -> None:
        self._events: dict[Event, list[EventHook]] = defaultdict(list)
        self._vetoes: dict[str, list[VetoHook]] = defaultdict(list)

    def on(self, event: Event | str, hook: EventHook) -> EventHook:
        self._events[Event(event)].append(hook)
        return hook

    def before(self, flow: str, hook: VetoHook) -> VetoHook:
        if flow not in {"sign_up", "sign_in"}:
            raise ValueError("veto hooks are for 'sign_up' or 'sign_in'")
        self._vetoes[flow].append(hook)
        return hook

    async def check(self, flow: str, email: str) -> None:
        for hook in self._vetoes.get(flow, ()):
            if await hook(email) is False:
                raise NotAllowedError(long_message=f"This {flow.replace('_', '-')} is not allowed.")

    async def emit(self, *events: AuthEvent) -> None:
        for event in events:
            for hook in self._events.get(event.event, ()):
                try:
                    await hook(event)
                except Exception:
                    logger.exception("hook for %s failed", event.event.value)
