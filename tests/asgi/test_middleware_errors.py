"""Bad input of every kind gets a clear 4xx JSON error, never a 500 (in-process transport)."""

from typing import Any

import httpx
import pytest

from magiclink_asgi import MagicLinkMiddleware

from .harness import build_app, make_magiclinks, same_origin

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8000"


@pytest.fixture
async def browser() -> Any:
    magiclinks, _ = make_magiclinks(BASE)
    async with same_origin(build_app("starlette", magiclinks), BASE) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    body = response.json()
    error = body["errors"][0]
    assert set(error) == {"code", "message", "long_message", "meta"}
    return str(error["code"])


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_request"),
        (b"[1, 2]", "application/json", 400, "invalid_request"),
        (b'{"identifier": 42}', "application/json", 400, "invalid_request"),
        (b"{}", "application/json", 400, "invalid_request"),
        (b'{"identifier": "not an email"}', "application/json", 422, "invalid_email_address"),
        (b"identifier=a@example.com", "text/plain", 415, "unsupported_media_type"),
        (b"\xff\xfe", "application/x-www-form-urlencoded", 400, "invalid_request"),
        (b"\xff\xfe", "application/json", 400, "invalid_request"),
        # the same byte as a %-escape: refused alike, never read as U+FFFD
        (
            b"identifier=jo%e9@example.org",
            "application/x-www-form-urlencoded",
            400,
            "invalid_request",
        ),
    ],
)
async def test_bad_bodies(
    browser: httpx.AsyncClient, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = await browser.post(
        "/auth/v1/client/sign_ins", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert error_code(response) == code


async def test_a_form_byte_that_is_not_utf8_is_refused_escaped_or_raw_and_nothing_is_sent() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with same_origin(build_app("starlette", magiclinks), BASE) as browser:
        for content in (b"email_address=jo%e9@example.org", b"email_address=jo\xe9@example.org"):
            refused = await browser.post(
                "/auth/v1/client/sign_ups",
                content=content,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert refused.status_code == 400 and error_code(refused) == "invalid_request"
        assert (await browser.get("/auth/v1/client")).json()["sign_up"] is None
        created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": "jo@e.com"})
        prepared = await browser.post(
            f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
            content=b"strategy=email_link&redirect_url=%2Fwelcome%ff",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert prepared.status_code == 400 and error_code(prepared) == "invalid_request"
        assert not mailer.outbox
        assert (await browser.get("/auth/v1/client")).json()["sign_up"]["verifications"][
            "email_address"
        ] is None


async def test_oversized_bodies_declared_or_streamed(browser: httpx.AsyncClient) -> None:
    big = b'{"identifier": "' + b"a" * 20000 + b'"}'
    declared = await browser.post(
        "/auth/v1/client/sign_ins", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413 and error_code(declared) == "payload_too_large"

    async def chunks() -> Any:
        for _ in range(20):
            yield b"a" * 1000

    streamed = await browser.post(
        "/auth/v1/client/sign_ins", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413 and error_code(streamed) == "payload_too_large"


async def test_unknown_ids_and_other_clients_attempts_are_not_found(
    browser: httpx.AsyncClient,
) -> None:
    assert (await browser.get("/auth/v1/client")).status_code == 200
    unknown = await browser.get("/auth/v1/client/sign_ins/sia_doesnotexist")
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    created = await browser.post("/auth/v1/client/sign_ins", json={"identifier": "a@example.com"})
    sign_in_id = created.json()["id"]
    stranger = httpx.AsyncClient(
        transport=browser._transport, base_url=BASE, headers={"origin": BASE}
    )
    async with stranger:
        for path in (
            f"/auth/v1/client/sign_ins/{sign_in_id}",
            f"/auth/v1/client/sign_ins/{sign_in_id}?wait=1",
        ):
            response = await stranger.get(path)
            assert response.status_code == 404 and error_code(response) == "not_found"
        await stranger.get("/auth/v1/client")  # the stranger has a client now
        for path in (f"/auth/v1/client/sign_ins/{sign_in_id}", "/auth/v1/client/sign_ups/x"):
            response = await stranger.get(path)
            assert response.status_code == 404
        prepare = await stranger.post(
            f"/auth/v1/client/sign_ins/{sign_in_id}/prepare_first_factor",
            json={"strategy": "email_link", "redirect_url": f"{BASE}/"},
        )
        assert prepare.status_code == 404
        touch = await stranger.post("/auth/v1/client/sessions/sess_nope/touch")
        assert touch.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("DELETE", "/auth/v1/client", 405, "method_not_allowed"),
        ("PUT", "/auth/v1/client/sign_ins", 405, "method_not_allowed"),
        ("GET", "/auth/v1/nothing-here", 404, "not_found"),
        ("GET", "/auth/nothing-here", 404, "not_found"),
        ("GET", "/auth/v1/me", 401, "unauthenticated"),
        ("POST", "/auth/v1/me/email_addresses", 401, "unauthenticated"),
        ("GET", "/auth/v1/me/sessions", 401, "unauthenticated"),
        ("GET", "/auth/v1/client/sign_ins/x?wait=31", 400, "invalid_request"),
        ("GET", "/auth/v1/client/sign_ins/x?wait=soon", 400, "invalid_request"),
        ("GET", "/auth/v1/client/sign_ins/x?version=one", 400, "invalid_request"),
        ("GET", "/auth/v1/client/sign_ins/x?verification_status=gone", 400, "invalid_request"),
        ("GET", "/auth/v1/client/sign_ins/x?wait=%ff", 400, "invalid_request"),
        ("GET", "/auth/v1/client/sign_ins/x?wait=1&note=%e9", 400, "invalid_request"),
        ("POST", "/auth/v1/openapi.json", 405, "method_not_allowed"),
    ],
)
async def test_wrong_methods_paths_and_queries(
    browser: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    await browser.get("/auth/v1/client")
    response = await browser.request(method, path)
    assert response.status_code == status, response.text
    assert error_code(response) == code


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/auth/v1/client", "GET, HEAD"),
        ("PUT", "/auth/v1/client/sign_ins", "POST"),
        ("POST", "/auth/v1/openapi.json", "GET, HEAD"),
        ("DELETE", "/auth/v1/verify/confirm", "GET, HEAD, POST"),
        ("GET", "/auth/v1/verify/resend", "POST"),
    ],
)
async def test_a_405_allows_head_wherever_get_is(
    browser: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await browser.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow
    head = await browser.head(path)  # HEAD is answered where GET is, and only there
    assert (head.status_code != 405) == ("GET" in allow)


async def test_a_value_too_long_is_said_to_be_too_long(browser: httpx.AsyncClient) -> None:
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": "l@e.com"})
    path = f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification"
    long = await browser.post(path, json={"redirect_url": "/" + "a" * 2048})
    assert long.status_code == 400 and error_code(long) == "invalid_request"
    assert long.json()["errors"][0]["long_message"] == (
        "redirect_url must be at most 2048 characters."
    )
    typed = await browser.post(path, json={"redirect_url": 42})
    assert typed.json()["errors"][0]["long_message"] == "redirect_url must be a string."


async def test_wrong_strategy_and_redirects(browser: httpx.AsyncClient) -> None:
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": "b@e.com"})
    path = f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification"
    wrong = await browser.post(path, json={"strategy": "password", "redirect_url": f"{BASE}/"})
    assert wrong.status_code == 400 and error_code(wrong) == "invalid_request"
    evil = await browser.post(
        path, json={"strategy": "email_link", "redirect_url": "https://evil.example/"}
    )
    assert evil.status_code == 422 and error_code(evil) == "redirect_url_not_allowed"


async def test_rate_limit_answers_429_with_retry_after() -> None:
    magiclinks, _ = make_magiclinks(BASE, links_per_address=1)
    async with same_origin(build_app("starlette", magiclinks), BASE) as browser:
        created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": "r@e.com"})
        path = f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification"
        body = {"strategy": "email_link", "redirect_url": f"{BASE}/"}
        assert (await browser.post(path, json=body)).status_code == 200
        limited = await browser.post(path, json=body)
        assert limited.status_code == 429 and error_code(limited) == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "", "sec-fetch-site": "cross-site"},
        {"origin": "", "content-type": "application/x-www-form-urlencoded"},
    ],
)
async def test_cross_origin_state_changes_are_refused(
    browser: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    sent = {k: v for k, v in headers.items() if v}
    client = httpx.AsyncClient(transport=browser._transport, base_url=BASE, headers=sent)
    if "origin" in client.headers and not headers["origin"]:
        del client.headers["origin"]
    async with client:
        if "content-type" in headers:
            response = await client.post(
                "/auth/v1/client/sign_ins", content=b"identifier=a%40example.com"
            )
        else:
            response = await client.post(
                "/auth/v1/client/sign_ins", json={"identifier": "a@example.com"}
            )
    assert response.status_code == 403, response.text
    assert error_code(response) == "csrf_failed"


async def test_same_origin_by_fetch_metadata_and_json_without_origin(
    browser: httpx.AsyncClient,
) -> None:
    client = httpx.AsyncClient(
        transport=browser._transport, base_url=BASE, headers={"sec-fetch-site": "same-origin"}
    )
    async with client:
        form = await client.post("/auth/v1/client/sign_ins", data={"identifier": "a@example.com"})
        assert form.status_code == 200
    bare = httpx.AsyncClient(transport=browser._transport, base_url=BASE)
    async with bare:
        # a non-browser JSON client: no cross-site form can send application/json
        assert (
            await bare.post("/auth/v1/client/sign_ins", json={"identifier": "a@example.com"})
        ).status_code == 200


def test_prefix_must_match_the_verify_path() -> None:
    magiclinks, _ = make_magiclinks(BASE)
    with pytest.raises(ValueError, match="verify_path"):
        MagicLinkMiddleware(build_app("starlette", magiclinks), magiclinks, prefix="/login")
    assert MagicLinkMiddleware(object(), magiclinks, prefix="/auth/", pages=False).prefix == "/auth"  # type: ignore[arg-type]


def test_a_dev_mailbox_asked_of_the_middleware_but_not_of_its_pages_is_refused() -> None:
    from magiclink_asgi import HostedPages, MagicLinkMiddleware

    magiclinks, _ = make_magiclinks("http://127.0.0.1:8000")
    pages = HostedPages(magiclinks)
    with pytest.raises(ValueError, match="HostedPages"):
        MagicLinkMiddleware(None, magiclinks=magiclinks, pages=pages, dev_mailbox=True)
    with pytest.raises(ValueError, match="pages=True"):
        MagicLinkMiddleware(None, magiclinks=magiclinks, pages=False, dev_mailbox=True)
    MagicLinkMiddleware(
        None,
        magiclinks=magiclinks,
        pages=HostedPages(magiclinks, dev_mailbox=True),
        dev_mailbox=True,
    )
