"""Malformed input answers 400, never 500, and leaves nothing behind: the inputs the fuzzers
(``test_fuzzed_api.py``, ``tests/core/test_public_calls_fuzzed.py``) found or are there to find,
pinned one by one. And every route the app serves is in its OpenAPI document, and back."""

from __future__ import annotations

import re

import httpx
import pytest

from magiclink_asgi import api, landing
from magiclink_asgi.openapi import SERVED_ROUTES
from magiclink_core import SignUp

from ._http import App, make_app

pytestmark = pytest.mark.anyio


def refused(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_request"
    return str(error["long_message"])


async def _sign_up(app: App, browser: httpx.AsyncClient) -> str:
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": "b@e.com"})
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize(
    "query",
    [
        "wait=",
        "wait=%20",
        "wait=soon",
        "wait=nan",
        "wait=inf",
        "wait=1_0",
        "wait=-1",
        "wait=31",
        "wait=1e400",
        "version=",
        "version=-1",
        "version=1.5",
        "version=%2B",
        "version=1_0",
        f"version={2**63}",
    ],
)
async def test_a_malformed_wait_or_version_is_a_400(query: str) -> None:
    app = make_app()
    async with app.browser() as browser:
        sign_up_id = await _sign_up(app, browser)
        message = refused(await browser.get(f"/auth/v1/client/sign_ups/{sign_up_id}?{query}"))
        assert query.split("=")[0] in message


async def test_well_formed_waits_are_answered() -> None:
    app = make_app()
    async with app.browser() as browser:
        sign_up_id = await _sign_up(app, browser)
        for query in ["wait=0", "wait=0.0", "wait=-0", "wait=0&version=0", "version=99", ""]:
            answer = await browser.get(f"/auth/v1/client/sign_ups/{sign_up_id}?{query}")
            assert answer.status_code == 200, (query, answer.text)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 16000,  # deeper than the JSON parser goes: RecursionError, once a 500
        b'{"a":' * 2500 + b"1" + b"}" * 2500,
        b'{"email_address": "\\ud800@example.com"}',  # a lone surrogate: no UTF-8 carries it
        b'{"email_address": "b@e.com", "x": {"\\udfff": 1}}',
    ],
)
async def test_json_that_is_not_text_or_too_deep_is_a_400(body: bytes) -> None:
    app = make_app()
    async with app.browser() as browser:
        answer = await browser.post(
            "/auth/v1/client/sign_ups",
            content=body,
            headers={"content-type": "application/json"},
        )
        refused(answer)


async def test_a_redirect_url_with_a_lone_surrogate_is_never_stored() -> None:
    """It was once accepted by prepare and stored; every later read of the sign-up (the
    client's own polling included) then answered 500."""
    app = make_app()
    async with app.browser() as browser:
        sign_up_id = await _sign_up(app, browser)
        for field, value in [("redirect_url", "/\\ud800"), ("code", "1\\ud800")]:
            action = "prepare_verification" if field == "redirect_url" else "attempt_verification"
            answer = await browser.post(
                f"/auth/v1/client/sign_ups/{sign_up_id}/{action}",
                content=f'{{"{field}": "{value}"}}'.encode(),
                headers={"content-type": "application/json"},
            )
            refused(answer)
        stored = await app.magiclinks.storage.get(SignUp, sign_up_id)
        assert stored is not None and stored.verification is None
        assert (await browser.get(f"/auth/v1/client/sign_ups/{sign_up_id}")).status_code == 200


@pytest.mark.parametrize("token", ["%E4%B8%AD", "%ED%A0%80", "%00", "x%0D%0Ay", "a%20b", "a" * 257])
async def test_a_link_token_that_is_not_one_is_refused_before_any_header(token: str) -> None:
    app = make_app()
    async with app.browser() as browser:
        answer = await browser.get(f"/auth/v1/verify?token={token}")
    assert answer.status_code == 400
    assert "text/html" in answer.headers["content-type"]
    assert not answer.headers.get_list("set-cookie")


async def test_every_served_route_is_documented_and_every_documented_one_is_served() -> None:
    app = make_app()
    async with app.browser() as browser:
        document = (await browser.get("/auth/v1/openapi.json")).json()
        routed = {(r.method, r.template) for r in [*api.ROUTES, *landing.ROUTES]}
        routed.add(("GET", "/v1/openapi.json"))
        assert routed == {(m, t) for m, t, _ in SERVED_ROUTES}
        documented = {
            (method.upper(), path.removeprefix("/auth"))
            for path, operations in document["paths"].items()
            for method in operations
        }
        assert documented == routed
        for method, template in sorted(routed):
            path = "/auth" + template.replace("{id}", "x_1")
            answer = await browser.request(method, path)
            # whatever the answer, it is the route's own, not the router's "no such endpoint"
            assert answer.status_code not in {404, 405} or "No such endpoint" not in answer.text
            assert answer.status_code != 405, (method, path)


async def test_the_document_describes_what_the_api_requires() -> None:
    app = make_app()
    async with app.browser() as browser:
        document = (await browser.get("/auth/v1/openapi.json")).json()
    paths = document["paths"]

    def body(path: str, method: str = "post") -> dict[str, object]:
        content = paths[f"/auth/v1{path}"][method]["requestBody"]["content"]
        return content["application/x-www-form-urlencoded"]["schema"]  # type: ignore[no-any-return]

    assert body("/client/sign_ups")["required"] == ["email_address"]
    assert body("/client/sign_ins")["required"] == ["identifier"]
    assert body("/me/email_addresses")["required"] == ["email_address"]
    assert body("/me", "patch")["required"] == ["primary_email_address_id"]
    for path in [
        "/client/sign_ups/{id}/attempt_verification",
        "/client/sign_ins/{id}/attempt_first_factor",
        "/me/email_addresses/{id}/attempt_verification",
    ]:
        assert body(path)["required"] == ["code"]
    assert body("/client/sign_ups")["properties"]["email_address"]["format"] == "email"  # type: ignore[index]
    redirect = body("/client/sign_ups/{id}/prepare_verification")["properties"]["redirect_url"]  # type: ignore[index]
    assert redirect["format"] == "uri-reference"
    wait = next(
        p
        for p in paths["/auth/v1/client/sign_ins/{id}"]["get"]["parameters"]
        if p["name"] == "wait"
    )
    assert wait["schema"] == {"type": "number", "minimum": 0, "maximum": 30}
    limited = paths["/auth/v1/client/sign_ins"]["post"]["responses"]
    assert "Retry-After" in limited["429"]["headers"] and "503" in limited
    assert "502" in paths["/auth/v1/client/sign_ins/{id}/prepare_first_factor"]["post"]["responses"]
    reverify = paths["/auth/v1/me/email_addresses"]["post"]
    assert "reverification_required" in reverify["responses"]["403"]["description"]
    schemes = document["components"]["securitySchemes"]
    assert {s["in"] for s in schemes.values()} == {"cookie"}
    assert {s["name"] for s in schemes.values()} == {
        app.asgi.cookies.client,
        app.asgi.cookies.session,
    }
    confirm = paths["/auth/v1/verify/confirm"]["post"]
    cookies = {p["name"] for p in confirm["parameters"] if p["in"] == "cookie"}
    assert cookies == {app.asgi.cookies.landing, app.asgi.cookies.csrf}
    assert (
        "csrf_token"
        in confirm["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"][
            "required"
        ]
    )
    assert re.search(r"Origin", document["info"]["description"])
