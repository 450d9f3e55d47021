"""Headers that protect the person after and around the flow: the sign-out answer clears our
session and client cookies by name and asks the browser to drop this site's cache
(``Clear-Site-Data: "cache"``; never ``"cookies"``, which would remove every cookie of the
registrable domain, the host app's own included, nor ``"storage"``, which would wipe the host
app's own data), and every answer, JSON, the OpenAPI document, pages and redirects alike, says
``X-Content-Type-Options: nosniff``."""

from __future__ import annotations

import httpx
import pytest

from tests.asgi.test_security_headers import client, every_kind_of_answer

from ._http import make_app
from ._links import confirm, open_landing, sign_up, signed_up

pytestmark = pytest.mark.anyio


async def test_signing_out_clears_our_cookies_and_the_sites_cache() -> None:
    app = make_app()
    async with app.browser() as laptop, app.browser("192.0.2.44") as phone:
        await signed_up(app, laptop, "ann@example.org")
        me = (await laptop.get("/auth/v1/client")).json()
        session = me["sessions"][0]["id"]
        # ending a session of this client that is not the one in use: no clearing
        await signed_up(app, phone, "bob@example.org")
        bob = (await phone.get("/auth/v1/client")).json()["sessions"][0]["id"]
        other = await laptop.post(f"/auth/v1/client/sessions/{bob}/end")
        assert "clear-site-data" not in other.headers
        out = await laptop.post(f"/auth/v1/client/sessions/{session}/end")
        assert out.status_code == 200, out.text
        assert out.headers["clear-site-data"] == '"cache"'
        cleared = out.headers.get_list("set-cookie")
        for name in ("magiclink_session", "magiclink_client"):
            assert any(f"{name}=" in c and "Max-Age=0" in c for c in cleared), cleared
        assert (await laptop.get("/auth/v1/me")).status_code == 401


async def test_nosniff_on_every_answer_including_landing_pages_and_redirects() -> None:
    app = make_app()
    answers: dict[str, httpx.Response] = {}
    async with app.browser() as owner, app.browser("192.0.2.44") as phone:
        prepared, link = await sign_up(app, owner, "ann@example.org")
        answers["landing redirect (another device)"] = await phone.get(link)
        page = await open_landing(phone, link)
        answers["confirm page"] = page
        answers["wrong code"] = await confirm(phone, page, "0")
        code = prepared["verifications"]["email_address"]["confirmation_code"]
        answers["done"] = await confirm(phone, page, code)
        answers["done again"] = await confirm(phone, page, code)
        _, own = await sign_up(app, owner, "bob@example.org")
        answers["landing redirect (same device)"] = await owner.get(own)
        answers["signed in again"] = await owner.get(own)
        answers["malformed token"] = await owner.get("/auth/v1/verify?token=%E4%B8%AD")
        answers["landing, HEAD"] = await owner.head(own)
        answers["landing, 405"] = await owner.delete("/auth/v1/verify")
        answers["api 404"] = await owner.get("/auth/v1/client/sign_ins/nope")
        answers["api 422"] = await owner.post("/auth/v1/client/sign_ins", json={})
        answers["openapi"] = await owner.get("/auth/v1/openapi.json")
        answers["sign out"] = await owner.post("/auth/v1/client/sessions/nope/end")
    async with client("https://app.example.com") as c:
        answers.update(await every_kind_of_answer(c))
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name


async def test_revoking_this_browsers_own_session_signs_it_out_as_sign_out_does() -> None:
    # the account page's "revoke" on the session in use is a sign-out: a browser that kept its
    # client would still show the revoked person's address to whoever uses it next
    app = make_app()
    async with app.browser() as laptop, app.browser("192.0.2.44") as phone:
        await signed_up(app, laptop, "ann@example.org")
        await signed_up(app, phone, "ann.phone@example.org")
        laptop_session = (await laptop.get("/auth/v1/client")).json()["sessions"][0]["id"]
        assert "ann@example.org" in (await laptop.get("/auth/v1/client")).text
        out = await laptop.post(f"/auth/v1/me/sessions/{laptop_session}/revoke")
        assert out.status_code == 200, out.text
        assert out.json()["status"] == "revoked"
        assert out.headers["clear-site-data"] == '"cache"'
        cleared = out.headers.get_list("set-cookie")
        for name in ("magiclink_session", "magiclink_client"):
            assert any(f"{name}=" in c and "Max-Age=0" in c for c in cleared), cleared
        assert (await laptop.get("/auth/v1/me")).status_code == 401
        assert "ann@example.org" not in (await laptop.get("/auth/v1/client")).text
        # revoking another session of the same user leaves this browser's cookies alone
        await signed_up(app, laptop, "ann.phone@example.org")
        mine = (await laptop.get("/auth/v1/client")).json()["sessions"][0]["id"]
        sessions = (await laptop.get("/auth/v1/me/sessions")).json()["data"]
        other = next(s["id"] for s in sessions if s["id"] != mine and s["status"] == "active")
        kept = await laptop.post(f"/auth/v1/me/sessions/{other}/revoke")
        assert kept.status_code == 200, kept.text
        assert "clear-site-data" not in kept.headers
        assert not kept.headers.get_list("set-cookie")
        assert (await laptop.get("/auth/v1/me")).status_code == 200
