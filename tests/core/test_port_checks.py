"""Adapters whose methods are sync where the service awaits them (or async where it does not)
are refused when ``MagicLinks`` is built, with a TypeError naming the method, as hooks are
when registered; async callables of any shape (methods, partials, objects with an async
``__call__``) are accepted."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from magiclink_core import EmailRenderer, MagicLinks, Settings
from magiclink_core.emails import LinkEmail, NoticeEmail
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import EmailMessage, Storage, Subscription
from magiclink_core.storage import MemoryNotifier, MemoryStorage
from magiclink_core.testing import FakeClock, PassingNotifier
from tests.support import SECRET

pytestmark = pytest.mark.anyio

SETTINGS = Settings(secret=SECRET, base_url="https://app.example.com", links_per_address=0)
STORAGE_METHODS = ["get", "find", "list", "apply", "increment", "purge", "close"]


def build(**adapters: Any) -> MagicLinks:
    options: dict[str, Any] = {"storage": MemoryStorage(), "mailer": MemoryMailer()}
    options.update(adapters)
    return MagicLinks(SETTINGS, **options)


class SyncMailer:
    """The prober's mailer: a plain ``def send``. Each "failed" send had in fact sent."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


async def test_a_mailer_whose_send_is_sync_is_refused_when_built() -> None:
    mailer = SyncMailer()
    with pytest.raises(TypeError, match=r"mailer\.send must be an async function"):
        build(mailer=mailer)
    assert mailer.sent == []


def with_sync(name: str) -> Storage:
    """A memory storage whose ``name`` is a plain function returning what the async one would
    have to be awaited for (the prober's storage had a sync ``find``)."""

    def sync(*args: Any, **kwargs: Any) -> None:
        return None

    storage = MemoryStorage()
    setattr(storage, name, sync)
    return storage


@pytest.mark.parametrize("name", STORAGE_METHODS)
async def test_a_storage_with_a_sync_port_method_is_refused_when_built(name: str) -> None:
    with pytest.raises(TypeError, match=rf"storage\.{name} must be an async function"):
        build(storage=with_sync(name))


async def test_a_storage_missing_a_port_method_is_refused_naming_it() -> None:
    class Partial:
        async def get(self, kind: Any, id: str) -> None:
            return None

    with pytest.raises(TypeError, match=r"storage has no find"):
        build(storage=Partial())


class SyncPublish(PassingNotifier):
    def publish(self, channel: str) -> None:  # type: ignore[override]
        return None


class AsyncSubscribe(PassingNotifier):
    async def subscribe(  # type: ignore[override]
        self, channel: str
    ) -> AbstractAsyncContextManager[Subscription]:
        return self.inner.subscribe(channel)


@pytest.mark.parametrize(
    ("notifier", "message"),
    [
        (SyncPublish(MemoryNotifier()), r"notifier\.publish must be an async function"),
        (AsyncSubscribe(MemoryNotifier()), r"notifier\.subscribe must be a plain function"),
    ],
)
async def test_a_notifier_of_the_wrong_kind_is_refused_when_built(
    notifier: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        build(notifier=notifier)


class AsyncRenderer(EmailRenderer):
    """The prober's renderer: an async ``render``, whose coroutine object was "sent"."""

    async def render(self, email: LinkEmail | NoticeEmail) -> EmailMessage:  # type: ignore[override]
        return super().render(email)


async def test_an_email_renderer_whose_render_is_async_is_refused_when_built() -> None:
    mailer = MemoryMailer()
    with pytest.raises(TypeError, match=r"emails\.render must be a plain function"):
        build(mailer=mailer, emails=AsyncRenderer())
    assert mailer.outbox == []


async def test_a_clock_whose_now_is_async_is_refused_when_built() -> None:
    class AsyncClock:
        async def now(self) -> Any:
            return FakeClock().now()

    with pytest.raises(TypeError, match=r"clock\.now must be a plain function"):
        build(clock=AsyncClock())


class AsyncCallable:
    """An object whose ``__call__`` is async: an async callable like any other."""

    def __init__(self, outbox: list[EmailMessage]) -> None:
        self.outbox = outbox

    async def __call__(self, message: EmailMessage) -> None:
        self.outbox.append(message)


async def _append(outbox: list[EmailMessage], message: EmailMessage) -> None:
    outbox.append(message)


SENDS: dict[str, Callable[[list[EmailMessage]], object]] = {
    "a partial of an async function": lambda outbox: functools.partial(_append, outbox),
    "an object with an async __call__": AsyncCallable,
    "a partial of one": lambda outbox: functools.partial(AsyncCallable(outbox)),
}


@pytest.mark.parametrize("shape", SENDS)
async def test_async_callables_of_any_shape_are_accepted_and_used(shape: str) -> None:
    outbox: list[EmailMessage] = []

    class Mailer:
        pass

    mailer = Mailer()
    mailer.send = SENDS[shape](outbox)  # type: ignore[attr-defined]
    links = build(mailer=mailer)
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert [m.to for m in outbox] == ["ann@example.org"]


async def test_the_shipped_and_wrapping_adapters_pass() -> None:
    """A notifier passing every call on, a renderer whose render is a partial, a storage
    that delegates by ``__getattr__``: all built without complaint."""

    class Delegating:
        def __init__(self, inner: Storage) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    renderer = EmailRenderer()
    renderer.render = functools.partial(EmailRenderer.render, renderer)  # type: ignore[method-assign]
    links = build(
        storage=Delegating(MemoryStorage()),
        notifier=PassingNotifier(MemoryNotifier()),
        emails=renderer,
        clock=FakeClock(),
    )
    client, token = await links.create_client()
    assert await links.get_client(token) == client
