"""What the click, landing and replay tests share: start an attempt in one browser and read its
link from the outbox, open a link on a device and go through its landing, count sessions."""

from __future__ import annotations

from typing import Any

import httpx

from magiclink_core import Session
from tests.support import csrf_token, link_in

from ._http import App


async def sign_up(
    app: App, browser: httpx.AsyncClient, email: str, redirect_url: str = "/done"
) -> tuple[dict[str, Any], str]:
    """A sign-up started by ``browser``: the prepare's answer and the emailed link."""
    return await _start(
        app, browser, email, redirect_url, "sign_ups", "email_address", "prepare_verification"
    )


async def sign_in(
    app: App, browser: httpx.AsyncClient, email: str, redirect_url: str = "/done"
) -> tuple[dict[str, Any], str]:
    """A sign-in started by ``browser`` (the address has an account): its answer and link."""
    return await _start(
        app, browser, email, redirect_url, "sign_ins", "identifier", "prepare_first_factor"
    )


async def sign_up_with_code(
    app: App, browser: httpx.AsyncClient, email: str
) -> tuple[dict[str, Any], str, str]:
    """:func:`sign_up`, and the confirmation code its prepare's answer carries."""
    prepared, link = await sign_up(app, browser, email)
    return prepared, link, prepared["verifications"]["email_address"]["confirmation_code"]


async def _start(
    app: App,
    browser: httpx.AsyncClient,
    email: str,
    redirect_url: str,
    attempts: str,
    email_field: str,
    prepare: str,
) -> tuple[dict[str, Any], str]:
    """Create an attempt under ``/auth/v1/client/{attempts}`` and prepare its email link."""
    created = await browser.post(f"/auth/v1/client/{attempts}", json={email_field: email})
    assert created.status_code == 200, created.text
    prepared = await browser.post(
        f"/auth/v1/client/{attempts}/{created.json()['id']}/{prepare}",
        json={"strategy": "email_link", "redirect_url": redirect_url},
    )
    assert prepared.status_code == 200, prepared.text
    return dict(prepared.json()), last_link(app, email)


def last_link(app: App, email: str) -> str:
    message = app.mailer.last_to(email)
    assert message is not None, f"no email to {email}"
    return link_in(message.text)


async def signed_up(app: App, browser: httpx.AsyncClient, email: str) -> str:
    """An account for ``email``, signed in on ``browser``; its session cookie's value."""
    _, link = await sign_up(app, browser, email)
    landed = await browser.get(link)
    assert "__magiclink_status=verified" in landed.headers["location"], landed.text
    return session_cookie(browser)


def session_cookie(browser: httpx.AsyncClient) -> str:
    found = [c.value for c in browser.cookies.jar if c.name.endswith("magiclink_session")]
    assert len(found) == 1, found
    return str(found[0])


async def client_id(browser: httpx.AsyncClient) -> str:
    return str((await browser.get("/auth/v1/client")).json()["id"])


async def sessions_of(app: App, client: str) -> list[Session]:
    """Every session stored for a client, live or not."""
    return list(await app.magiclinks.storage.list(Session, "client_id", client))


async def open_landing(browser: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open ``link`` as another device does: the link, then the page it moves to."""
    moved = await browser.get(link)
    assert moved.status_code == 303, moved.text
    return await browser.get(moved.headers["location"])


async def confirm(
    browser: httpx.AsyncClient, page: httpx.Response, code: str | None = None
) -> httpx.Response:
    """Submit the confirmation form of ``page`` (with ``code`` when the policy asks one) and,
    as a browser does, follow its redirect back to the confirmation page (the done page, or the
    form again): the page the person sees."""
    data = {"csrf_token": csrf_token(page.text)}
    if code is not None:
        data["confirmation_code"] = code
    answer = await browser.post("/auth/v1/verify/confirm", data=data)
    location = answer.headers.get("location", "")
    if answer.status_code == 303 and location.startswith("/auth/v1/verify/confirm"):
        return await browser.get(location)
    return answer


async def status_of(browser: httpx.AsyncClient, kind: str = "sign_up") -> str:
    return str((await browser.get("/auth/v1/client")).json()[kind]["status"])
