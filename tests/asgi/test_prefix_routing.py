"""Which requests the middleware answers itself: its prefix and the paths under it, nothing else
(``/authx`` and ``/aut`` are the app's), whatever the path."""

from typing import Any

import anyio
from hypothesis import example, given
from hypothesis import strategies as st

from magiclink_asgi import MagicLinkMiddleware
from tests.asgi.harness import make_magiclinks

PREFIX = "/auth"
NEAR = ["", "/", "/a", "/au", "/aut", "/auth", "/auth/", "/authx", "/Auth", "//auth", "/h", "/xxxh"]


def ours(path: str) -> bool:
    """The rule, spelt plainly."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class Recorder:
    """The host app: answers 200 and remembers the paths it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


APP = Recorder()
MIDDLEWARE = MagicLinkMiddleware(
    APP, magiclinks=make_magiclinks("http://localhost:8000")[0], pages=False
)


async def get(path: str) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost:8000")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await MIDDLEWARE(scope, receive, send)


@given(st.tuples(st.sampled_from(NEAR), st.text(max_size=12)).map("".join))
@example("/auth")
@example("/auth/v1/client")
@example("/authx/v1/client")
@example("/")
def test_the_middleware_answers_its_prefix_and_the_paths_under_it(path: str) -> None:
    APP.paths.clear()
    anyio.run(get, path)
    assert (APP.paths == []) == ours(path), f"{path!r}: passed on to the app: {APP.paths}"
