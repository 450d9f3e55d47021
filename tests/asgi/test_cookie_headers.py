"""Which Cookie headers sign a request in, and name its browser: the first cookie named as our
session (client) cookie, in any of the request's Cookie headers (HTTP/2 sends one per cookie),
beside any other cookies, however near their names come to ours; over https only the
``__Host-`` names count."""

from collections.abc import MutableMapping
from functools import cache
from itertools import pairwise
from typing import Any

import anyio
from hypothesis import example, given
from hypothesis import strategies as st

from magiclink_asgi import MagicLinkMiddleware
from magiclink_core import MagicLinks
from magiclink_core.mailers import MemoryMailer
from tests.asgi.harness import make_magiclinks
from tests.support import token_in

BASE_URLS = {"http": "http://localhost:8000", "https": "https://app.example.com"}
SESSION_NAMES = {"http": "magiclink_session", "https": "__Host-magiclink_session"}
CLIENT_NAMES = {"http": "magiclink_client", "https": "__Host-magiclink_client"}


async def session_token(magiclinks: MagicLinks, mailer: MemoryMailer) -> str:
    """A new user's session token, signed up by link."""
    client, _ = await magiclinks.create_client()
    sign_up = await magiclinks.create_sign_up(client, "cookies@example.com")
    await magiclinks.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    await magiclinks.mail_sent()
    message = mailer.last_to("cookies@example.com")
    assert message is not None
    result = await magiclinks.verify_link(token_in(message.text), client)
    assert result.session_token is not None
    return result.session_token


class Whoami:
    """The host app: remembers whether the middleware signed the request in, and the client
    token it read."""

    def __init__(self) -> None:
        self.seen: tuple[bool, str | None] | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.seen = (scope["user"].is_authenticated, scope["magiclink"].client_token)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@cache
def served(scheme: str) -> tuple[MagicLinkMiddleware, Whoami, str]:
    """The middleware for ``scheme``'s base URL, its host app, and a valid session token."""
    magiclinks, mailer = make_magiclinks(BASE_URLS[scheme])
    app = Whoami()
    token = anyio.run(session_token, magiclinks, mailer)
    return MagicLinkMiddleware(app, magiclinks=magiclinks, pages=False), app, token


def seen(scheme: str, cookie_headers: list[str]) -> tuple[bool, str | None]:
    middleware, app, _ = served(scheme)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "GET",
        "scheme": scheme,
        "path": "/whoami",
        "raw_path": b"/whoami",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost:8000"), (b"accept", b"*/*")]
        + [(b"cookie", header.encode("latin-1")) for header in cookie_headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    app.seen = None
    anyio.run(middleware, scope, receive, send)
    assert app.seen is not None
    return app.seen


NAMES = [
    "magiclink_session",
    "__Host-magiclink_session",
    "magiclink_client",
    "__Host-magiclink_client",
    "magiclink_sent_on",
    "magiclink_",
    "magiclink_sessionx",
    "xmagiclink_session",
    "Magiclink_session",
    "csrftoken",
    "_ga",
]


@st.composite
def cookie_jars(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], list[int]]:
    """A scheme, the cookies a browser sends (names near ours; values the token or not), and
    where the cookie list is cut into separate Cookie headers."""
    scheme = draw(st.sampled_from(["http", "https"]))
    token = served(scheme)[2]
    value = st.sampled_from([token, token[:-1], "x", '"' + token + '"', ""])
    cookies = draw(st.lists(st.tuples(st.sampled_from(NAMES), value), max_size=6))
    cuts = draw(st.lists(st.integers(0, len(cookies)), max_size=3).map(sorted))
    return scheme, cookies, cuts


def headers_of(cookies: list[tuple[str, str]], cuts: list[int]) -> list[str]:
    bounds = [0, *cuts, len(cookies)]
    parts = [cookies[start:end] for start, end in pairwise(bounds)]
    return ["; ".join(f"{name}={value}" for name, value in part) for part in parts if part]


@given(cookie_jars())
@example(("http", [("csrftoken", "x")], []))
@example(("http", [("magiclink_sent_on", "/"), ("magiclink_session", "TOKEN")], [1]))
@example(("https", [("magiclink_session", "TOKEN")], []))
@example(("http", [("csrftoken", "x"), ("magiclink_client", "TOKEN")], [1]))
def test_the_first_cookie_of_each_of_our_names_is_the_one_read(
    jar: tuple[str, list[tuple[str, str]], list[int]],
) -> None:
    scheme, cookies, cuts = jar
    token = served(scheme)[2]
    cookies = [(name, token if value == "TOKEN" else value) for name, value in cookies]
    sessions = [value for name, value in cookies if name == SESSION_NAMES[scheme]]
    clients = [value for name, value in cookies if name == CLIENT_NAMES[scheme]]
    expected = (
        bool(sessions) and unquoted(sessions[0]) == token,
        unquoted(clients[0]) if clients else None,
    )
    assert seen(scheme, headers_of(cookies, cuts)) == expected, (cookies, cuts)


def unquoted(value: str) -> str:
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
