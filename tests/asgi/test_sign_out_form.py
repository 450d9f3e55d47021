"""The hosted sign-out page's form, for browsers without JavaScript: it signs out by a POST
carrying the page's CSRF token (double-submit, as the landing's forms), answered by a redirect
to the page, which then says "You're signed out"."""

from typing import Any

import httpx
import pytest

from tests.support import csrf_token, link_in

from .harness import build_app, make_magiclinks

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8000"


def browser_for(app: Any, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=BASE, headers={"origin": BASE, **headers}
    )


async def signed_in(browser: httpx.AsyncClient, mailer: Any, email: str) -> None:
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": email})
    prepared = await browser.post(
        f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
        json={"strategy": "email_link", "redirect_url": f"{BASE}/whoami"},
    )
    assert prepared.status_code == 200, prepared.text
    await browser.get(link_in(mailer.last_to(email).text))
    assert (await browser.get("/whoami")).json()["authenticated"] is True


async def test_the_form_signs_out_and_redirects_to_the_page() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks, pages=True)
    async with browser_for(app) as browser:
        await signed_in(browser, mailer, "out@example.com")
        page = await browser.get("/auth/sign-out")
        assert "<noscript>" in page.text and "out@<wbr>example.com" in page.text
        token = csrf_token(page.text)
        cookie = [c for c in page.headers.get_list("set-cookie") if "magiclink_csrf=" in c]
        assert cookie and "HttpOnly" in cookie[0] and "Path=/auth/sign-out" in cookie[0]

        answer = await browser.post("/auth/sign-out", data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/auth/sign-out"
        assert answer.headers["clear-site-data"] == '"cache"'  # the app's own cookies stay
        cleared = answer.headers.get_list("set-cookie")
        for name in ("magiclink_session", "magiclink_client"):
            assert any(c.startswith(f"{name}=") and "Max-Age=0" in c for c in cleared), cleared
        assert (await browser.get("/whoami")).json()["authenticated"] is False
        after = await browser.get("/auth/sign-out")
        assert "You're signed out" in after.text and 'name="csrf_token"' not in after.text
        # sent again (a reload of the answer, say): nothing to do, the same way on
        again = await browser.post("/auth/sign-out", data={"csrf_token": token})
        assert again.status_code == 303 and again.headers["location"] == "/auth/sign-out"


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({}, {}),  # no token
        ({"csrf_token": "forged"}, {}),
        (None, {"origin": "https://elsewhere.example"}),  # the right token, from another site
    ],
    ids=["no-token", "forged", "cross-site"],
)
async def test_a_form_without_its_token_signs_nobody_out(
    form: dict[str, str] | None, headers: dict[str, str]
) -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks, pages=True)
    async with browser_for(app) as browser:
        await signed_in(browser, mailer, "stay@example.com")
        token = csrf_token((await browser.get("/auth/sign-out")).text)
        refused = await browser.post(
            "/auth/sign-out",
            data=form if form is not None else {"csrf_token": token},
            headers=headers,
        )
        assert refused.status_code == 403
        assert "clear-site-data" not in refused.headers
        assert (await browser.get("/whoami")).json()["authenticated"] is True


async def test_with_after_sign_out_url_the_form_goes_there() -> None:
    from magiclink_asgi.pages import HostedPages

    magiclinks, mailer = make_magiclinks(BASE)
    pages = HostedPages(magiclinks, after_sign_out_url="/bye")
    app = build_app("starlette", magiclinks, pages=pages)
    async with browser_for(app) as browser:
        await signed_in(browser, mailer, "bye@example.com")
        token = csrf_token((await browser.get("/auth/sign-out")).text)
        answer = await browser.post("/auth/sign-out", data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/bye"
