"""A notifier that passes everything to the one it wraps: the base of a notifier a test or a
benchmark watches (a count of parked waiters, say), which overrides only what it watches."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Self

from ..ports import Notifier, Subscription


class PassingNotifier:
    """Every call passed to ``inner``; subclass it and override what you watch (``subscribe``)."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner

    @property
    def healthy(self) -> bool:
        return self.inner.healthy

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)

    async def publish(self, channel: str) -> None:
        await self.inner.publish(channel)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return self.inner.subscribe(channel)

    async def close(self) -> None:
        await self.inner.close()
