"""Test harness for the middleware: three real apps (Starlette, FastAPI, Quart) served by
uvicorn on 127.0.0.1, and a Browser with its own cookie jar (one Browser = one client)."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import uvicorn

from magiclink_asgi import MagicLinkMiddleware, current_user, require_user
from magiclink_core import MagicLinks, Settings, Storage
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import HasNotifier
from magiclink_core.storage import MemoryNotifier, MemoryStorage
from tests.support import SECRET, StartedServer, WatchedNotifier, free_port, link_in

FRAMEWORKS = ["starlette", "fastapi", "quart", "litestar"]
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


def make_magiclinks(
    base_url: str, *, storage: Storage | None = None, **settings: Any
) -> tuple[MagicLinks, MemoryMailer]:
    """A MagicLinks over ``storage`` (memory by default) whose notifier a test can watch;
    ``clock`` and ``emails`` (a renderer) may be given among ``settings``."""
    mailer = MemoryMailer()
    clock = settings.pop("clock", None)
    emails = settings.pop("emails", None)
    options: dict[str, Any] = {"links_per_address": 0, **settings}
    store = storage if storage is not None else MemoryStorage()
    notifier = store.notifier() if isinstance(store, HasNotifier) else MemoryNotifier()
    magiclinks = MagicLinks(
        Settings(secret=SECRET, base_url=base_url, **options),
        storage=store,
        mailer=mailer,
        clock=clock,
        notifier=WatchedNotifier(notifier),
        emails=emails,
    )
    return magiclinks, mailer


def who(user: Any, auth: Any) -> dict[str, Any]:
    """What ``/whoami`` answers: the request's user and credentials, as the framework sees them."""
    return {
        "authenticated": user.is_authenticated,
        "identity": user.identity,
        "display_name": user.display_name,
        "session": user.session_id or None,
        "scopes": list(auth.scopes),
    }


def build_app(framework: str, magiclinks: MagicLinks, **options: Any) -> Any:
    """An app with ``/whoami`` (reads the user), ``/private`` (``require_user``) and, where the
    framework has it, ``/requires`` (Starlette's ``@requires("authenticated")``)."""
    options.setdefault("pages", False)
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.authentication import requires
        from starlette.middleware import Middleware
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def whoami(request: Request) -> JSONResponse:
            return JSONResponse(who(request.user, request.auth))

        async def private(request: Request) -> JSONResponse:
            return JSONResponse({"identity": require_user(request).identity})

        @requires("authenticated")
        async def required(request: Request) -> JSONResponse:
            return JSONResponse({"identity": request.user.identity})

        return Starlette(
            routes=[
                Route("/whoami", whoami),
                Route("/private", private),
                Route("/requires", required),
            ],
            middleware=[Middleware(MagicLinkMiddleware, magiclinks=magiclinks, **options)],
        )
    if framework == "fastapi":
        from fastapi import Depends, FastAPI, Request
        from starlette.authentication import requires

        from magiclink_asgi import MagicLinkUser

        fast = FastAPI()

        @fast.get("/whoami")
        async def whoami_fast(request: Request) -> dict[str, Any]:
            return who(request.user, request.auth)

        @fast.get("/private")
        async def private_fast(user: MagicLinkUser = Depends(require_user)) -> dict[str, Any]:
            return {"identity": user.identity}

        @fast.get("/requires")
        @requires("authenticated")
        async def required_fast(request: Request) -> dict[str, Any]:
            return {"identity": request.user.identity}

        fast.add_middleware(MagicLinkMiddleware, magiclinks=magiclinks, **options)
        return fast
    if framework == "quart":
        from quart import Quart, jsonify, request

        quart = Quart(__name__)

        @quart.get("/whoami")
        async def whoami_quart() -> Any:
            return jsonify(who(current_user(request), request.scope["auth"]))

        @quart.get("/private")
        async def private_quart() -> Any:
            return jsonify({"identity": require_user(request).identity})  # 401 by itself

        quart.asgi_app = MagicLinkMiddleware(  # type: ignore[method-assign]
            quart.asgi_app, magiclinks=magiclinks, **options
        )
        return quart
    if framework == "litestar":
        from litestar import Litestar, Request, get

        @get("/whoami")
        async def whoami_litestar(request: Request[Any, Any, Any]) -> dict[str, Any]:
            return who(request.user, request.auth)

        @get("/private")
        async def private_litestar(request: Request[Any, Any, Any]) -> dict[str, Any]:
            return {"identity": require_user(request).identity}

        # Litestar runs its own middleware only for routes it matched: wrap the whole app, so
        # the prefix's routes are served too (as for Quart)
        app = Litestar(route_handlers=[whoami_litestar, private_litestar])
        return MagicLinkMiddleware(app, magiclinks=magiclinks, **options)
    raise ValueError(framework)


def same_origin(app: Any, base_url: str) -> httpx.AsyncClient:
    """An in-process browser for ``app`` whose requests come from ``base_url``'s own origin."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=base_url, headers={"origin": base_url}
    )


@dataclass
class Server:
    base_url: str
    magiclinks: MagicLinks
    mailer: MemoryMailer

    @property
    def notifier(self) -> WatchedNotifier:
        """The app's notifier: ``await server.notifier.until_waiting()`` once a long poll is
        held by the server."""
        notifier = self.magiclinks.notifier
        assert isinstance(notifier, WatchedNotifier)
        return notifier

    def browser(self, user_agent: str = FIREFOX, **kwargs: Any) -> "Browser":
        return Browser(self.base_url, user_agent=user_agent, **kwargs)

    def last_link(self, to: str) -> str:
        message = self.mailer.last_to(to)
        assert message is not None, f"no email to {to}"
        return link_in(message.text)

    def last_code(self, to: str) -> str:
        """The code in the newest email to ``to`` (as the development mailbox shows it)."""
        message = self.mailer.last_to(to)
        assert message is not None and message.email_code, f"no code in the email to {to}"
        return message.email_code

    @asynccontextmanager
    async def long_poll(
        self, browser: "Browser", path: str, **params: str | int
    ) -> AsyncIterator["Answer"]:
        """``GET path`` (under the API) from ``browser``, as a long poll: the block runs once
        the server holds it, and its answer is in the yielded :class:`Answer` after the block."""
        answer = Answer()

        async def wait() -> None:
            answer.response = await browser.api("GET", path, params=params)
            answer.at = time.perf_counter()

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await self.notifier.until_waiting()
            yield answer


@dataclass
class Answer:
    """What a long poll answered, and when (``time.perf_counter()``)."""

    response: httpx.Response | None = None
    at: float = 0.0

    def json(self) -> dict[str, Any]:
        assert self.response is not None, "the long poll has not answered"
        assert self.response.status_code == 200, self.response.text
        return dict(self.response.json())


@asynccontextmanager
async def serve(
    framework: str,
    *,
    storage: Storage | None = None,
    uvicorn_options: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Server]:
    """Run the framework's app under uvicorn on a free port for the block's duration."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    magiclinks, mailer = make_magiclinks(base_url, storage=storage, **settings)
    app = build_app(framework, magiclinks)
    options: dict[str, Any] = {"log_level": "warning", **(uvicorn_options or {})}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", ws="none", **options)
    started = anyio.Event()
    # the middleware enters magiclinks in the lifespan: its notifier listens while it serves
    server = StartedServer(config, on_started=started.set)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        await started.wait()
        try:
            yield Server(base_url, magiclinks, mailer)
        finally:
            server.should_exit = True


class Browser(httpx.AsyncClient):
    """One browser: its own cookie jar (so its own client), same-origin requests."""

    def __init__(self, base_url: str, *, user_agent: str = FIREFOX, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 40)
        super().__init__(
            base_url=base_url,
            headers={"user-agent": user_agent, "origin": base_url},
            follow_redirects=False,
            **kwargs,
        )

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request(method, "/auth/v1" + path, **kwargs)

    async def start_sign_in(self, email: str, redirect_url: str) -> dict[str, Any]:
        """Create a sign-in and send its link (a JSON body)."""
        return await self._start(
            "sign_ins",
            {"identifier": email},
            "prepare_first_factor",
            json={"strategy": "email_link", "redirect_url": redirect_url},
        )

    async def start_sign_up(self, email: str, redirect_url: str) -> dict[str, Any]:
        """Create a sign-up and send its link (a form body: the API takes both)."""
        return await self._start(
            "sign_ups",
            {"email_address": email},
            "prepare_verification",
            data={"strategy": "email_link", "redirect_url": redirect_url},
        )

    async def add_address(self, email: str) -> dict[str, Any]:
        """Add ``email`` to the signed-in user's addresses (unverified): the API's answer."""
        added = await self.api("POST", "/me/email_addresses", json={"email_address": email})
        assert added.status_code == 200, added.text
        return dict(added.json())

    async def address_step(self, address_id: str, step: str, **body: Any) -> httpx.Response:
        """POST ``body`` to a verification step of an added address: ``prepare_verification``
        or ``attempt_verification``."""
        return await self.api("POST", f"/me/email_addresses/{address_id}/{step}", json=body)

    async def _start(
        self, attempts: str, create: dict[str, str], prepare: str, **body: Any
    ) -> dict[str, Any]:
        created = await self.api("POST", f"/client/{attempts}", json=create)
        assert created.status_code == 200, created.text
        prepared = await self.api(
            "POST", f"/client/{attempts}/{created.json()['id']}/{prepare}", **body
        )
        assert prepared.status_code == 200, prepared.text
        return dict(prepared.json())

    async def whoami(self) -> dict[str, Any]:
        response = await self.get("/whoami")
        assert response.status_code == 200, response.text
        return dict(response.json())
