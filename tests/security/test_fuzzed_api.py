"""Bad input everywhere: schemathesis against the OpenAPI document the app serves.

Every operation of ``/auth/v1/openapi.json`` is fuzzed in process (the app is the ASGI app a
host would mount) with every check schemathesis has: no answer is a 5XX, every status, content
type, header and body is the one the document promises, data the document calls invalid is
refused, and data it calls valid is accepted. Twice: signed out (a client cookie, and the
``Origin`` the API's CSRF check asks for), and signed in (the session cookie of a sign-up
completed with its emailed link).

Valid data may still meet a judgement no schema can state, and the document says so: an address
in the right format at a special-use domain (``.test``) or already on the account (422), a code
or a link token of the right shape that is not the one emailed (410, 422), a redirect to an
origin that is not allowed (422), a link that can no longer be renewed (400). Those operations
accept exactly those statuses besides the default ones.

Bounded for CI: derandomized, a few dozen examples an operation, the memory storage, and the
rate limits off (a 429 would hide what it refused; 429 is documented all the same).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi

from magiclink_asgi import MagicLinkMiddleware
from magiclink_core.mailers import MemoryMailer
from tests.asgi.harness import make_magiclinks
from tests.support import link_in

BASE = "http://localhost"  # base_url, and the Origin of the app's own pages
EMAIL = "fuzzed@example.com"
NO_LIMITS = {
    "links_per_address": 0,
    "links_per_ip": 0,
    "attempts_per_ip": 0,
    "email_code_failures_per_address": 0,
    "email_code_failures_per_ip": 0,
    "confirmation_code_failures_per_ip": 0,
}
DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# schemathesis's own list, and 413: invalid data over the body limit is refused for its size
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
JUDGED: dict[str, list[str]] = {
    # the address is judged beyond its format (special-use domains, look-alikes, length)
    "create_sign_up": ["422"],
    "create_sign_in": ["422"],
    "add_email_address": ["422"],
    # the redirect's origin must be allowed
    "prepare_sign_up": ["422"],
    "prepare_sign_in": ["422"],
    "prepare_email_address": ["422"],
    # a code of the right shape that is not the emailed one; or one too late
    "attempt_sign_up": ["410", "422"],
    "attempt_sign_in": ["410", "422"],
    "attempt_email_address": ["410", "422"],
    # a link token of the right shape that no link has
    "confirm_page": ["410", "422"],
    "confirm": ["410", "422"],
    "resend": ["400"],
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


def _cookies(app: MagicLinkMiddleware, mailer: MemoryMailer, *, signed_in: bool) -> dict[str, str]:
    """A client cookie (and, ``signed_in``, the session cookie of a completed sign-up)."""
    names = app.cookies
    with asgi.get_client(app) as http:
        http.headers["origin"] = BASE
        created = http.post("/auth/v1/client/sign_ups", json={"email_address": EMAIL})
        assert created.status_code == 200, created.text
        cookies = {names.client: http.cookies[names.client]}
        if not signed_in:
            return cookies
        prepared = http.post(
            f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": "/"},
        )
        assert prepared.status_code == 200, prepared.text
        message = mailer.last_to(EMAIL)
        assert message is not None
        landed = http.get(link_in(message.text).removeprefix(BASE), allow_redirects=False)
        assert landed.status_code == 303, landed.text
        return {**cookies, names.session: http.cookies[names.session]}


def _schema(app: MagicLinkMiddleware, cookies: dict[str, str]) -> Any:
    """The served document, fuzzed with ``cookies`` as the API's credentials."""
    names = app.cookies
    schemes = {"clientCookie": names.client, "sessionCookie": names.session}
    config = SchemathesisConfig.from_dict(
        {
            "headers": {"Origin": BASE},
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTED}},
            "auth": {
                "openapi": {
                    scheme: {"api_key": cookies[name]}
                    for scheme, name in schemes.items()
                    if name in cookies
                }
            },
            "operations": [
                {
                    "include-operation-id": name,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": DEFAULT_ACCEPTED + extra}
                    },
                }
                for name, extra in JUDGED.items()
            ],
        }
    )
    return schemathesis.openapi.from_asgi("/auth/v1/openapi.json", app, config=config)


# built at import: schemathesis parametrizes from a loaded document (its lazy loader does not
# run under this pytest); the app's lifespan runs on schemathesis's event-loop thread until exit
magiclinks, mailer = make_magiclinks(BASE, **NO_LIMITS)
app = MagicLinkMiddleware(_host_app, magiclinks=magiclinks, pages=False)
signed_out = _schema(app, _cookies(app, mailer, signed_in=False))
signed_in = _schema(app, _cookies(app, mailer, signed_in=True))
FUZZ = settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@signed_out.parametrize()
@FUZZ
def test_signed_out(case: schemathesis.Case) -> None:
    case.call_and_validate()


@signed_in.parametrize()
@FUZZ
def test_signed_in(case: schemathesis.Case) -> None:
    case.call_and_validate()
