"""Storage outages: the storage refuses connections, or accepts them and never answers
(black-holed), for a while, then comes back.

What must hold (issue 13): the host app's own routes keep working, signed out and marked
``scope["magiclink"].available == False``; ``require_user`` answers 503 with ``Retry-After``; the
API answers 503 JSON and the landing and hosted pages a 503 page with a way to retry, never a
500; answers say "temporarily unavailable" and name no backend, host or port (the log has the
details, once per request); each request's storage time is bounded by
``Settings.storage_timeout``; a click whose write lands after its request gave up signs the
same client in when it tries again; nothing issued before the outage is lost.

Unit-level cases run on a memory storage behind a switch (:class:`Switched`); the same
promises are then checked against real PostgreSQL and Redis behind a TCP proxy that refuses
(``Proxy.cut``) or black-holes (``Proxy.stall``) — see ``tests/core/_services.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from magiclink_asgi import MagicLinkMiddleware, auth_available, require_user
from magiclink_core import MagicLinkError, MagicLinks, Settings, StorageUnavailableError
from magiclink_core.domain.models import User
from magiclink_core.ports import Change, R, Storage
from magiclink_core.storage import MemoryStorage
from tests.asgi.harness import FRAMEWORKS, make_magiclinks, serve
from tests.core._services import SERVERS, Proxy, isolated, server_url, storage_at, target_of
from tests.core._services import with_port as _with_port
from tests.support import SECRET, link_in, token_in

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8000"
# what a driver's error says, which must never reach an answer
LEAK = "Redis: ConnectionError: Error 111 connecting to 10.9.8.7:6390. Connection refused."
SECRETS_OF_THE_BACKEND = ("Redis", "redis", "PostgreSQL", "postgres", "10.9.8.7", "6390", "5432")
TIMEOUT = 0.5  # seconds: the storage_timeout of the unit-level apps
SLACK = 0.75  # seconds of scheduling slack on a busy 2-core machine

Mode = Literal["up", "down", "hang"]


class Switched:
    """A memory storage behind a switch: ``up``, ``down`` (refuses: raises the way an adapter
    does, with its driver's details) or ``hang`` (black-holed: never answers). ``only`` limits
    the fault to the reads of some record kinds. ``trap_next_write`` black-holes the next
    ``apply`` and keeps its batch, delivered later by :meth:`deliver` (a write that lands after
    its request gave up)."""

    def __init__(self) -> None:
        self.inner = MemoryStorage()
        self.mode: Mode = "up"
        self.only: set[type[Any]] | None = None
        self.trap_next_write = False
        self.trapped: list[Sequence[Change]] = []
        self.calls = 0

    async def _gate(self, kind: type[Any] | None = None) -> None:
        self.calls += 1
        if self.only is not None and kind not in self.only:
            return
        if self.mode == "down":
            raise StorageUnavailableError(long_message=LEAK)
        if self.mode == "hang":
            await anyio.sleep_forever()

    async def get(self, kind: type[R], id: str) -> R | None:
        await self._gate(kind)
        return await self.inner.get(kind, id)

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        await self._gate(kind)
        return await self.inner.find(kind, field, value)

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        await self._gate(kind)
        return await self.inner.list(kind, field, value)

    async def apply(self, changes: Sequence[Change]) -> None:
        if self.trap_next_write:
            self.trap_next_write = False
            self.trapped.append(changes)
            await anyio.sleep_forever()  # the request gives up; the batch is on its way
        await self._gate()
        await self.inner.apply(changes)

    async def deliver(self) -> None:
        """The trapped writes land now (after their requests gave up)."""
        while self.trapped:
            await self.inner.apply(self.trapped.pop(0))

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        await self._gate()
        return await self.inner.increment(key, window=window, now=now, amount=amount)

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        await self._gate()
        return await self.inner.purge(now, limit=limit)

    async def close(self) -> None:
        await self.inner.close()


# -- an app of the host's own, with public and private routes -----------------------------------


def host_app(magiclinks: MagicLinks, *, pages: bool = False) -> Starlette:
    async def public(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "authenticated": request.user.is_authenticated,
                "scopes": list(request.auth.scopes),
                "available": request.scope["magiclink"].available,
                "auth_available": auth_available(request),
            }
        )

    async def private(request: Request) -> JSONResponse:
        return JSONResponse({"identity": require_user(request).identity})

    app = Starlette(
        routes=[Route("/", public), Route("/whoami", whoami), Route("/private", private)]
    )
    return MagicLinkMiddleware(app, magiclinks=magiclinks, pages=pages)  # type: ignore[return-value]


def browser_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=BASE, headers={"origin": BASE}, timeout=30
    )


async def sign_in(browser: httpx.AsyncClient, mailer: Any, email: str) -> str:
    """Sign ``browser`` up (or in) by link; returns the link it used."""
    link = await ask_for_link(browser, mailer, email)
    landed = await browser.get(link)
    assert landed.status_code == 303 and "status=verified" in landed.headers["location"]
    return link


async def ask_for_link(browser: httpx.AsyncClient, mailer: Any, email: str) -> str:
    """Start a sign-up and have its link emailed, unclicked."""
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": email})
    assert created.status_code == 200, created.text
    prepared = await browser.post(
        f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
        json={"strategy": "email_link", "redirect_url": f"{BASE}/"},
    )
    assert prepared.status_code == 200, prepared.text
    return link_in(mailer.last_to(email).text)


def assert_discreet(response: httpx.Response) -> None:
    """A 503 that says "temporarily unavailable" and nothing of the backend."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert "temporarily unavailable" in response.text.lower()
    for word in SECRETS_OF_THE_BACKEND:
        assert word not in response.text, word


def assert_api_503(response: httpx.Response) -> None:
    assert_discreet(response)
    (error,) = response.json()["errors"]
    assert error["code"] == "storage_unavailable"
    assert error["long_message"] == error["message"]


@asynccontextmanager
async def outage_app(
    *, pages: bool = False, **settings: Any
) -> AsyncIterator[tuple[Switched, MagicLinks, Any, httpx.AsyncClient]]:
    store = Switched()
    settings.setdefault("storage_timeout", TIMEOUT)
    magiclinks, mailer = make_magiclinks(BASE, storage=store, **settings)
    async with browser_for(host_app(magiclinks, pages=pages)) as browser:
        yield store, magiclinks, mailer, browser


# -- the host app's routes ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_an_outage_leaves_the_apps_routes_working_signed_out_and_marked(mode: Mode) -> None:
    async with outage_app() as (store, _, mailer, browser):
        await sign_in(browser, mailer, "ann@example.org")
        assert (await browser.get("/whoami")).json()["authenticated"] is True
        store.mode = mode
        started = time.monotonic()
        seen = await browser.get("/whoami")
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert seen.status_code == 200
        assert seen.json() == {
            "authenticated": False,
            "scopes": [],
            "available": False,
            "auth_available": False,
        }
        assert "set-cookie" not in seen.headers  # the session cookie is kept for later
        assert "cookie" in seen.headers["vary"].lower()
        assert (await browser.get("/")).text == "hello"
        store.mode = "up"
        assert (await browser.get("/whoami")).json()["authenticated"] is True


async def test_a_public_route_without_cookies_touches_no_storage() -> None:
    async with outage_app() as (store, _, _mailer, browser):
        store.mode = "hang"
        before = store.calls
        assert (await browser.get("/")).text == "hello"
        assert store.calls == before


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_require_user_answers_503_with_retry_after(mode: Mode) -> None:
    async with outage_app() as (store, _, mailer, browser):
        assert (await browser.get("/private")).status_code == 401
        await sign_in(browser, mailer, "ann@example.org")
        store.mode = mode
        refused = await browser.get("/private")
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_require_user_answers_503_in_every_framework(framework: str) -> None:
    store = Switched()
    # the session cache off: served from memory, a live session would outlive the outage
    async with (
        serve(framework, storage=store, storage_timeout=TIMEOUT, session_cache_ttl=0) as server,
        server.browser() as browser,
    ):
        await browser.start_sign_up("fw@example.org", f"{server.base_url}/")
        assert (await browser.get(server.last_link("fw@example.org"))).status_code == 303
        assert (await browser.get("/private")).status_code == 200
        store.mode = "down"
        refused = await browser.get("/private")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        seen = await browser.get("/whoami")
        assert seen.status_code == 200 and seen.json()["authenticated"] is False
        store.mode = "up"
        assert (await browser.get("/private")).status_code == 200


# -- the API, the landing, the hosted pages --------------------------------------------------------


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_the_api_answers_503_json_naming_no_backend(mode: Mode) -> None:
    async with outage_app() as (store, _, mailer, browser):
        await sign_in(browser, mailer, "ann@example.org")
        store.mode = mode
        # with a session cookie (the session check fails), and without (the call fails)
        assert_api_503(await browser.get("/auth/v1/me"))
        assert_api_503(await browser.get("/auth/v1/client"))
        async with browser_for(browser._transport.app) as stranger:  # type: ignore[attr-defined]
            assert_api_503(await stranger.get("/auth/v1/client"))
            assert_api_503(
                await stranger.post("/auth/v1/client/sign_ins", json={"identifier": "a@b.org"})
            )


async def test_me_answers_503_when_the_session_read_works_and_the_user_read_fails() -> None:
    async with outage_app() as (store, _, mailer, browser):
        await sign_in(browser, mailer, "ann@example.org")
        store.only, store.mode = {User}, "down"
        assert (await browser.get("/whoami")).json()["authenticated"] is True
        assert_api_503(await browser.get("/auth/v1/me"))


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_the_landing_answers_a_503_page_with_a_way_to_retry(mode: Mode) -> None:
    async with outage_app() as (store, _, mailer, browser):
        link = await ask_for_link(browser, mailer, "ann@example.org")
        store.mode = mode
        started = time.monotonic()
        page = await browser.get(link)
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert_discreet(page)
        assert page.headers["content-type"].startswith("text/html")
        assert 'href="">Try again' in page.text  # the same URL again
        assert "set-cookie" not in page.headers
        store.mode = "up"
        landed = await browser.get(link)  # the retry works
        assert landed.status_code == 303 and "status=verified" in landed.headers["location"]


async def test_the_landing_answers_503_when_only_the_click_fails() -> None:
    # no session cookie: the session check needs no storage; the click's own reads fail
    async with outage_app() as (store, _, mailer, browser):
        link = await ask_for_link(browser, mailer, "bob@example.org")
        store.mode = "down"
        assert_discreet(await browser.get(link))
        store.mode = "up"
        assert "status=verified" in (await browser.get(link)).headers["location"]


async def test_a_confirmation_posted_during_an_outage_answers_503_and_can_be_retried() -> None:
    async with outage_app() as (store, _, mailer, asker):
        link = await ask_for_link(asker, mailer, "carol@example.org")
        async with browser_for(asker._transport.app) as phone:  # type: ignore[attr-defined]
            moved = await phone.get(link)
            assert moved.headers["location"] == "/auth/v1/verify/confirm"
            form = await phone.get(moved.headers["location"])
            csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
            store.mode = "down"
            posted = await phone.post(
                "/auth/v1/verify/confirm",
                data={"csrf_token": csrf, "confirmation_code": "000000"},
            )
            assert_discreet(posted)
            assert 'href="/auth/v1/verify/confirm">Try again' in posted.text
            store.mode = "up"
            assert (await phone.get("/auth/v1/verify/confirm")).status_code == 200


async def test_hosted_pages_answer_503_when_the_sign_in_cannot_be_checked() -> None:
    async with outage_app(pages=True) as (store, _, mailer, browser):
        await sign_in(browser, mailer, "ann@example.org")
        assert (await browser.get("/auth/user")).status_code == 200
        store.mode = "down"
        page = await browser.get("/auth/user")
        assert_discreet(page)
        assert 'href="">Try again' in page.text
        css = await browser.get("/auth/static/magiclink.css")  # the page's own files still load
        assert css.status_code == 200


async def test_the_outage_is_logged_once_per_request_with_its_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with outage_app() as (store, _, mailer, browser):
        await sign_in(browser, mailer, "ann@example.org")
        store.mode = "down"
        with caplog.at_level(logging.WARNING, logger="magiclink"):
            answer = await browser.get("/auth/v1/client")
        assert answer.status_code == 503 and "10.9.8.7" not in answer.text
        logged = [r for r in caplog.records if "storage unavailable" in r.getMessage()]
        assert len(logged) == 1 and "10.9.8.7:6390" in logged[0].getMessage()


# -- one deadline per request ---------------------------------------------------------------------


def test_storage_timeout_is_a_positive_number_of_seconds() -> None:
    assert Settings(secret=SECRET, base_url=BASE).storage_timeout == timedelta(seconds=3)
    assert Settings(secret=SECRET, base_url=BASE, storage_timeout=1.5).storage_timeout == (
        timedelta(seconds=1.5)
    )
    for bad in (0, -1):
        with pytest.raises(ValidationError, match="storage_timeout"):
            Settings(secret=SECRET, base_url=BASE, storage_timeout=bad)


class Slow(Switched):
    """Every read takes ``delay`` seconds."""

    delay = 0.2

    async def _gate(self, kind: type[Any] | None = None) -> None:
        await anyio.sleep(self.delay)


async def test_a_requests_storage_time_is_one_budget_not_one_per_call() -> None:
    store = Slow()
    magiclinks, _ = make_magiclinks(BASE, storage=store, storage_timeout=0.5)
    _, _token = await magiclinks.create_client()
    # outside a request's budget, each call has its own: three slow reads all work
    for _ in range(3):
        assert await magiclinks.get_client(_token) is not None
    with magiclinks.storage_budget():
        assert await magiclinks.get_client(_token) is not None  # 0.2 s spent
        assert await magiclinks.get_client(_token) is not None  # 0.4 s spent
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as caught:
            await magiclinks.get_client(_token)  # 0.1 s left: stopped there
        assert time.monotonic() - started < 0.1 + SLACK
        assert "Redis" not in str(caught.value) and caught.value.status_hint == 503
        with pytest.raises(StorageUnavailableError):  # the outage is not tried again
            await magiclinks.get_client(_token)
    with magiclinks.storage_budget():  # the next request has a budget of its own
        assert await magiclinks.get_client(_token) is not None


async def test_a_black_holed_storage_is_given_up_at_the_timeout_not_later() -> None:
    async with outage_app(storage_timeout=1.0) as (store, _, mailer, browser):
        await sign_in(browser, mailer, "ann@example.org")
        store.mode = "hang"
        for path in ("/whoami", "/auth/v1/client", "/auth/v1/me"):
            started = time.monotonic()
            answer = await browser.get(path)
            elapsed = time.monotonic() - started
            assert 0.9 < elapsed < 1.0 + SLACK, (path, elapsed)
            assert answer.status_code in (200, 503)


# -- a click whose write lands after the request gave up -----------------------------------------


async def test_a_click_whose_write_lands_late_signs_in_when_the_same_client_retries() -> None:
    async with outage_app() as (store, magiclinks, mailer, browser):
        link = await ask_for_link(browser, mailer, "dan@example.org")
        store.trap_next_write = True
        gave_up = await browser.get(link)  # the consume is on its way when the request gives up
        assert_discreet(gave_up)
        await store.deliver()  # ... and lands: the link is used, the attempt complete
        retried = await browser.get(link)  # the same client's retry: the result, signed in
        assert retried.status_code == 200 and "You're signed in" in retried.text, retried.text
        assert any("magiclink_session=" in c for c in retried.headers.get_list("set-cookie"))
        who = (await browser.get("/whoami")).json()
        assert who["authenticated"] is True
        user_id = (await browser.get("/auth/v1/me")).json()["id"]
        assert len(await magiclinks.list_sessions(user_id)) == 1  # the same session, not two


async def test_a_used_link_answers_no_one_else_and_not_after_sign_out() -> None:
    async with outage_app() as (store, _, mailer, browser):
        link = await ask_for_link(browser, mailer, "eve@example.org")
        store.trap_next_write = True
        assert_discreet(await browser.get(link))
        await store.deliver()
        async with browser_for(browser._transport.app) as other:  # type: ignore[attr-defined]
            moved = await other.get(link)  # another client: the generic used-link page
            page = await other.get(moved.headers["location"])
            assert page.status_code == 422 and "no longer works" in page.text
        assert "You're signed in" in (await browser.get(link)).text
        session_id = (await browser.get("/auth/v1/client")).json()["last_active_session_id"]
        ended = await browser.post(f"/auth/v1/client/sessions/{session_id}/end")
        assert ended.status_code == 200, ended.text
        assert (await browser.get("/whoami")).json()["authenticated"] is False
        # signing out dropped this browser's client too: it is another client now, and the
        # link answers it as it answers anyone else
        moved = await browser.get(link)
        page = await browser.get(moved.headers["location"])
        assert page.status_code == 422 and "no longer works" in page.text
        assert (await browser.get("/whoami")).json()["authenticated"] is False


async def test_a_link_whose_emailed_code_was_used_makes_no_second_session() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    client, _ = await magiclinks.create_client()
    sign_up = await magiclinks.create_sign_up(client, "gus@example.org")
    await magiclinks.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    message = mailer.last_to("gus@example.org")
    assert message is not None and message.email_code
    done = await magiclinks.attempt_sign_up_verification(
        client, sign_up.id, code=message.email_code
    )
    # the same client opening the link too: the same answer, never a second session
    again = await magiclinks.verify_link(token_in(message.text), client)
    assert again.repeated and again.session is not None
    assert done.session is not None and again.session.id == done.session.id
    assert len(await magiclinks.list_sessions(again.session.user_id)) == 1
    with pytest.raises(MagicLinkError) as caught:  # anyone else: a used link
        await magiclinks.verify_link(token_in(message.text), (await magiclinks.create_client())[0])
    assert caught.value.code == "failed"


# -- real servers behind a proxy: refused and black-holed ----------------------------------------


def with_port(url: str, port: int) -> str:
    return _with_port(url, port)


@pytest.mark.parametrize("fault", ["refused", "black-holed"])
@pytest.mark.parametrize("kind", SERVERS)
async def test_an_outage_of_a_real_server(kind: Any, fault: str) -> None:
    """PostgreSQL or Redis behind a proxy, cut (connections refused and dropped) or stalled
    (accepted, never answered), then healed: every promise of the module, end to end."""
    timeout = 1.0
    async with isolated(kind) as scope:
        proxy = Proxy(*target_of(server_url(kind)))
        await proxy.start()
        store = storage_at(kind, with_port(server_url(kind), proxy.port), scope)
        await store.migrate()
        # the session cache off: every check reads the storage (the cache may serve a live
        # session through a short outage; that is tested in tests/core/test_session_cache.py)
        magiclinks, mailer = make_magiclinks(
            BASE, storage=store, storage_timeout=timeout, session_cache_ttl=0
        )
        app = host_app(magiclinks)
        try:
            async with browser_for(app) as ann, browser_for(app) as bob:
                await sign_in(ann, mailer, "ann@example.org")
                pending = await ask_for_link(bob, mailer, "bob@example.org")  # before the cut
                if fault == "refused":
                    await proxy.cut()
                else:
                    proxy.stall()
                bound = timeout + 1.0 + SLACK  # a write already sent may settle 1 s longer
                for request in (
                    lambda: ann.get("/whoami"),
                    lambda: ann.get("/private"),
                    lambda: ann.get("/auth/v1/me"),
                    lambda: bob.get("/auth/v1/client"),
                    lambda: bob.get(pending),
                ):
                    started = time.monotonic()
                    answer = await request()
                    elapsed = time.monotonic() - started
                    assert elapsed < bound, (answer.request.url, elapsed)
                    if answer.request.url.path == "/whoami":
                        assert answer.status_code == 200
                        assert answer.json()["available"] is False
                    else:
                        assert_discreet(answer)
                assert (await ann.get("/")).text == "hello"
                # healed: nobody was signed out, and the link sent before the cut works
                if fault == "refused":
                    await proxy.start()
                else:
                    proxy.resume()
                with anyio.fail_after(20):
                    while (await ann.get("/whoami")).json()["available"] is False:  # noqa: ASYNC110
                        await anyio.sleep(0.1)
                assert (await ann.get("/whoami")).json()["authenticated"] is True
                landed = await bob.get(pending)
                assert landed.status_code == 303, landed.text
                assert "status=verified" in landed.headers["location"]
                assert (await bob.get("/whoami")).json()["authenticated"] is True
        finally:
            await magiclinks.aclose()
            await proxy.cut()


@pytest.mark.parametrize("kind", SERVERS)
async def test_a_click_black_holed_mid_write_on_a_real_server_signs_in_on_retry(
    kind: Any,
) -> None:
    """The proxy stalls just as the click writes its completion, and heals after the request
    gave up: whether the write landed (Redis runs the script it already received) or not
    (PostgreSQL's transaction dies with its connection), the same client's retry is signed in,
    to one session."""
    async with isolated(kind) as scope:
        proxy = Proxy(*target_of(server_url(kind)))
        await proxy.start()
        real = storage_at(kind, with_port(server_url(kind), proxy.port), scope)
        await real.migrate()
        store = StallOnWrite(real, proxy)
        magiclinks, mailer = make_magiclinks(
            BASE, storage=store, storage_timeout=1.0, session_cache_ttl=0
        )
        try:
            async with browser_for(host_app(magiclinks)) as browser:
                link = await ask_for_link(browser, mailer, "fay@example.org")
                store.armed = True
                gave_up = await browser.get(link)
                assert_discreet(gave_up)
                proxy.resume()
                with anyio.fail_after(20):
                    while True:
                        retried = await browser.get(link)
                        if retried.status_code != 503:
                            break
                        await anyio.sleep(0.2)  # the pool reconnecting
                if retried.status_code == 200:  # the write had landed: this client's result
                    assert "You're signed in" in retried.text, retried.text
                else:  # it had not: the link was still there to use
                    assert retried.status_code == 303, retried.text
                    assert "status=verified" in retried.headers["location"]
                who = (await browser.get("/whoami")).json()
                assert who["authenticated"] is True
        finally:
            await magiclinks.aclose()
            await proxy.cut()


class StallOnWrite:
    """A storage that black-holes its proxy just before one write (when ``armed``)."""

    def __init__(self, inner: Storage, proxy: Proxy) -> None:
        self.inner = inner
        self.proxy = proxy
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def apply(self, changes: Sequence[Change]) -> None:
        if self.armed and len(changes) > 1:  # the completion batch
            self.armed = False
            self.proxy.stall()
        await self.inner.apply(changes)
