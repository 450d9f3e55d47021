"""Bad input everywhere: schemathesis against the OpenAPI document the app serves.

Every operation of ``/auth/v1/openapi.json`` is fuzzed in process (the app is the ASGI app a
host would mount) with every check schemathesis has: no answer is a 5XX, every status, content
type, header and body is the one the document promises, data the document calls valid is
accepted and data it calls invalid is refused. Twice: signed out (a client cookie and the
``Origin`` the API's CSRF check asks for), and signed in (the session cookie of a sign-in
completed with its emailed link).

Bounded for CI: derandomized, a few dozen examples an operation, the memory storage, and the
rate limits off (a 429 would hide whatever it refused; 429 is documented all the same).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from magiclink_asgi import MagicLinkMiddleware
from tests.asgi.harness import make_magiclinks
from tests.support import link_in

BASE = "http://localhost"  # base_url; the Origin of the app's own pages
EMAIL = "fuzzed@example.com"
NO_LIMITS = {
    "links_per_address": 0,
    "links_per_ip": 0,
    "attempts_per_ip": 0,
    "email_code_failures_per_address": 0,
    "email_code_failures_per_ip": 0,
    "confirmation_code_failures_per_ip": 0,
}


async def _host_app(scope: Any, receive: Any, send: Any) -> None:
    """The host app: it answers 204, and its lifespan is the middleware's (mail, notifier)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


magiclinks, mailer = make_magiclinks(BASE, **NO_LIMITS)
app = MagicLinkMiddleware(_host_app, magiclinks=magiclinks, pages=False)
schema = schemathesis.openapi.from_asgi("/auth/v1/openapi.json", app)

FUZZ = settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _cookies(signed_in: bool) -> dict[str, str]:
    """A client cookie (and, ``signed_in``, the session cookie of a completed sign-up)."""
    names = app.cookies
    with asgi.get_client(app) as http:
        http.headers["origin"] = BASE
        created = http.post("/auth/v1/client/sign_ups", json={"email_address": EMAIL})
        if not signed_in:
            return {names.client: http.cookies[names.client]}
        assert created.status_code == 200, created.text
        prepared = http.post(
            f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": "/"},
        )
        assert prepared.status_code == 200, prepared.text
        message = mailer.last_to(EMAIL)
        assert message is not None
        link = link_in(message.text).removeprefix(BASE)
        landed = http.get(link, allow_redirects=False)
        assert landed.status_code == 303, landed.text
        return {names.client: http.cookies[names.client], names.session: http.cookies[names.session]}


@pytest.fixture(scope="module")
def signed_out() -> dict[str, str]:
    return _cookies(signed_in=False)


@pytest.fixture(scope="module")
def signed_in() -> dict[str, str]:
    return _cookies(signed_in=True)


@schema.parametrize()
@FUZZ
def test_signed_out(case: schemathesis.Case, signed_out: dict[str, str]) -> None:
    case.call_and_validate(headers={"Origin": BASE}, cookies=signed_out)


@schema.parametrize()
@FUZZ
def test_signed_in(case: schemathesis.Case, signed_in: dict[str, str]) -> None:
    case.call_and_validate(headers={"Origin": BASE}, cookies=signed_in)
