"""Cookies, the scope, the landing's safety properties, the OpenAPI document."""

import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

import anyio
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from magiclink_asgi import landing
from magiclink_asgi.api import ROUTER, ROUTES
from magiclink_asgi.landing import with_status
from magiclink_asgi.openapi import SERVED_ROUTES
from magiclink_core import InvalidRedirectError
from magiclink_core.domain.models import Session
from magiclink_core.domain.redirects import check_redirect_url
from magiclink_core.ports import Change
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.core._support import CountingStorage, ReadsByKind
from tests.support import after_confirm, csrf_token, link_in

from .harness import IPHONE, build_app, make_magiclinks

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8000"


def browser_for(app: Any, base: str = BASE, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=base, headers={"origin": base, **headers}
    )


def link_of(mailer: Any, to: str) -> str:
    return link_in(mailer.last_to(to).text)


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    assert found, response.headers.get_list("set-cookie")
    return found[0]


async def start(browser: httpx.AsyncClient, email: str, base: str = BASE) -> dict[str, Any]:
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": email})
    prepared = await browser.post(
        f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
        json={"strategy": "email_link", "redirect_url": f"{base}/done?keep=1"},
    )
    assert prepared.status_code == 200, prepared.text
    return dict(prepared.json())


async def emailed_link(browser: httpx.AsyncClient, mailer: Any, email: str) -> str:
    """Start a sign-up on ``browser``: the link it emailed, not yet opened."""
    await start(browser, email)
    return link_of(mailer, email)


async def code_form(phone: httpx.AsyncClient, link: str) -> tuple[httpx.Response, httpx.Response]:
    """Open ``link`` on another device: the landing's redirect, and the code form it leads to."""
    moved = await phone.get(link)
    form = await phone.get(moved.headers["location"])
    assert form.status_code == 200 and "confirmation_code" in form.text
    return moved, form


async def test_cookies_over_http() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        first = await browser.get("/auth/v1/client")
        client = cookie_header(first, "magiclink_client")
        assert "HttpOnly" in client and "SameSite=Lax" in client and "Path=/" in client
        assert "Secure" not in client
        assert not (await browser.get("/auth/v1/client")).headers.get_list("set-cookie")
        await start(browser, "c@example.com")
        landed = await browser.get(link_of(mailer, "c@example.com"))
        session = cookie_header(landed, "magiclink_session")
        assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session


async def test_a_double_tap_whose_first_answer_comes_last_leaves_the_browser_signed_in() -> None:
    # a browser keeps the session cookie of the answer it gets last: here the first tap's,
    # held back by the app's hook, while the second tap is answered at once as a repeat
    clock = FakeClock()
    magiclinks, mailer = make_magiclinks(BASE, clock=clock)
    second_answered = anyio.Event()

    @magiclinks.on("sign_up_completed")
    async def slow_hook(event: Any) -> None:
        await second_answered.wait()

    answers: list[httpx.Response] = []
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        link = await emailed_link(browser, mailer, "tap@example.com")

        async def tap() -> None:
            answers.append(await browser.get(link))
            second_answered.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as taps:
                taps.start_soon(tap)
                await anyio.wait_all_tasks_blocked()  # the first tap waits in the hook
                taps.start_soon(tap)
        repeat, first = answers
        assert repeat.status_code == 200 and "You're signed in" in repeat.text
        assert first.status_code == 303
        assert cookie_header(repeat, "magiclink_session") != cookie_header(
            first, "magiclink_session"
        )
        assert browser.cookies["magiclink_session"] in cookie_header(first, "magiclink_session")
        assert (await browser.get("/whoami")).json()["authenticated"] is True
        clock.advance(hours=1)  # long past the grace of a replaced token
        assert (await browser.get("/whoami")).json()["authenticated"] is True


async def test_a_link_opened_again_by_the_browser_it_signed_in_keeps_its_cookie() -> None:
    # a Back or a reload: the session cookie the browser has works, so none is set (nothing is
    # written); a browser that lost its cookie (an answer lost on the way) gets a fresh one
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        link = await emailed_link(browser, mailer, "k@example.com")
        await browser.get(link)
        kept = browser.cookies["magiclink_session"]
        again = await browser.get(link)
        assert again.status_code == 200 and "You're signed in" in again.text
        assert "__magiclink_created_session=sess_" in again.text
        assert not [
            c for c in again.headers.get_list("set-cookie") if c.startswith("magiclink_session=")
        ]
        assert browser.cookies["magiclink_session"] == kept
        assert (await browser.get("/whoami")).json()["authenticated"] is True
        browser.cookies.delete("magiclink_session")
        lost = await browser.get(link)
        assert "You're signed in" in lost.text
        assert cookie_header(lost, "magiclink_session") != f"magiclink_session={kept}"
        assert (await browser.get("/whoami")).json()["authenticated"] is True


async def test_cookies_over_https_are_host_prefixed_and_secure() -> None:
    base = "https://app.example.com"
    magiclinks, mailer = make_magiclinks(base)
    async with browser_for(build_app("starlette", magiclinks), base) as browser:
        await start(browser, "s@example.com", base)
        created = [c for c in (await browser.get("/auth/v1/client")).headers.get_list("set-cookie")]
        assert not created  # the client cookie came with the first API call
        landed = await browser.get(link_of(mailer, "s@example.com"))
        session = cookie_header(landed, "__Host-magiclink_session")
        assert "Secure" in session and "HttpOnly" in session and "Path=/" in session
        assert "Domain" not in session
        assert (await browser.get("/whoami")).json()["authenticated"] is True
    magiclinks, _ = make_magiclinks(base)
    async with browser_for(build_app("starlette", magiclinks), base) as browser:
        client = cookie_header(await browser.get("/auth/v1/client"), "__Host-magiclink_client")
        assert "Secure" in client and "SameSite=Lax" in client
    magiclinks, _ = make_magiclinks(base)
    app = build_app("starlette", magiclinks, secure_cookies=False)
    async with browser_for(app, base) as browser:
        cookie_header(await browser.get("/auth/v1/client"), "magiclink_client")


async def test_no_client_is_created_outside_the_api_and_app_routes_see_the_user() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("fastapi", magiclinks)) as browser:
        whoami = await browser.get("/whoami")
        assert whoami.json() == {
            "authenticated": False,
            "identity": "",
            "display_name": "",
            "session": None,
            "scopes": [],
        }
        assert not whoami.headers.get_list("set-cookie")
        private = await browser.get("/private")
        assert private.status_code == 401
        await start(browser, "u@example.com")
        await browser.get(link_of(mailer, "u@example.com"))
        me = (await browser.get("/whoami")).json()
        assert me["authenticated"] is True and me["identity"].startswith("user_")
        assert (await browser.get("/private")).json() == {"identity": me["identity"]}


async def test_same_client_landing_headers_and_no_token_in_the_final_url() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        await start(browser, "h@example.com")
        landed = await browser.get(link_of(mailer, "h@example.com"))
        assert landed.status_code == 303
        assert landed.headers["referrer-policy"] == "no-referrer"
        assert landed.headers["cache-control"] == "no-store"
        location = landed.headers["location"]
        assert location.startswith(f"{BASE}/done?keep=1&__magiclink_status=verified")
        assert "__magiclink_created_session=sess_" in location and "token" not in location
        again = await browser.get(link_of(mailer, "h@example.com"))
        # a used link opened again by the browser it signed in: said so, with a way on
        assert again.status_code == 200 and "You're signed in" in again.text
        assert "__magiclink_status=verified" in again.text and "token" not in again.text
        assert again.headers["referrer-policy"] == "no-referrer"
    async with browser_for(build_app("starlette", magiclinks)) as stranger:
        # anyone else: the token leaves the URL, then the generic error page
        moved = await stranger.get(link_of(mailer, "h@example.com"))
        assert moved.headers["location"] == "/auth/v1/verify/confirm"
        page = await stranger.get(moved.headers["location"])
        assert page.status_code == 422 and "no longer works" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"


async def test_a_scanner_get_consumes_nothing() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as owner:
        link = await emailed_link(owner, mailer, "scan@example.com")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url=BASE, follow_redirects=True
        ) as scanner:
            for _ in range(3):
                fetched = await scanner.get(link)
                assert fetched.status_code == 200 and "one-time-code" in fetched.text
                assert "token" not in str(fetched.url)
                assert fetched.headers["cache-control"] == "no-store"
            head = await scanner.head(link)
            assert head.status_code in (200, 303)
        sign_up = (await owner.get("/auth/v1/client")).json()["sign_up"]
        assert sign_up["verifications"]["email_address"]["status"] == "unverified"
        landed = await owner.get(link)
        assert "__magiclink_status=verified" in landed.headers["location"]


@pytest.mark.parametrize("policy", ["confirm", "allow"])
async def test_a_click_and_a_confirmation_each_read_the_link_once(policy: str) -> None:
    store = ReadsByKind()
    magiclinks, mailer = make_magiclinks(BASE, storage=store, cross_device=policy)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as asker:
        await start(asker, "here@example.com")
        store.gets.clear()
        landed = await asker.get(link_of(mailer, "here@example.com"))
        assert "__magiclink_status=verified" in landed.headers["location"]
        assert (store.gets["Link"], store.gets["SignUp"]) == (1, 1)
    async with browser_for(app) as asker, browser_for(app) as phone:
        started = await start(asker, "there@example.com")
        moved = await phone.get(link_of(mailer, "there@example.com"))
        page = await phone.get(moved.headers["location"])
        form = {"csrf_token": csrf_token(page.text)}
        if policy == "confirm":
            form["confirmation_code"] = started["verifications"]["email_address"][
                "confirmation_code"
            ]
        store.gets.clear()
        posted = await phone.post("/auth/v1/verify/confirm", data=form)
        assert (store.gets["Link"], store.gets["SignUp"]) == (1, 1)
        done = await after_confirm(phone, posted)
        assert done.status_code == 200 and "You're all set" in done.text
        assert (await asker.get("/auth/v1/client")).json()["sign_up"]["status"] == "complete"
        again = await phone.post("/auth/v1/verify/confirm", data=form)  # a second tap
        again_page = await after_confirm(phone, again)
        assert again_page.status_code == 200 and "You're all set" in again_page.text


async def test_confirm_form_needs_its_csrf_token_and_fails_after_wrong_codes() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as owner, browser_for(app, **{"user-agent": IPHONE}) as phone:
        started = await start(owner, "code@example.com")
        code = started["verifications"]["email_address"]["confirmation_code"]
        redirect = await phone.get(link_of(mailer, "code@example.com"))
        page = await phone.get(redirect.headers["location"])
        assert 'inputmode="numeric"' in page.text and '<label for="confirmation_code"' in page.text
        assert "code@<wbr>example.com" in page.text  # free to wrap after its "@"
        csrf = csrf_token(page.text)
        forged = await phone.post(
            "/auth/v1/verify/confirm", data={"confirmation_code": code, "csrf_token": "forged"}
        )
        assert forged.status_code == 403
        # no code at all (the page's field requires one): refused as it is, nothing counted
        empty = await phone.post("/auth/v1/verify/confirm", data={"csrf_token": csrf})
        assert empty.status_code == 422 and "Type the code shown" in empty.text
        blank = await phone.post(
            "/auth/v1/verify/confirm", data={"confirmation_code": " ", "csrf_token": csrf}
        )
        assert blank.status_code == 422 and "Type the code shown" in blank.text
        wrong = "9" * len(code) if code != "9" * len(code) else "1" * len(code)
        for left in ("2 tries left", "1 try left"):
            answer = await phone.post(
                "/auth/v1/verify/confirm", data={"confirmation_code": wrong, "csrf_token": csrf}
            )
            page = await after_confirm(phone, answer, retry="wrong")
            assert page.status_code == 200 and left in page.text
            assert 'aria-invalid="true"' in page.text
            reloaded = await phone.get(answer.headers["location"])  # a reload counts nothing
            assert left in reloaded.text
        # the URL says only why the form is back; the tries left are read from the link
        asked = await phone.get("/auth/v1/verify/confirm")
        assert "tries left" not in asked.text and "try left" not in asked.text
        forged = await phone.get("/auth/v1/verify/confirm?retry=anything")
        assert 'aria-invalid="true"' not in forged.text
        last = await phone.post(
            "/auth/v1/verify/confirm", data={"confirmation_code": wrong, "csrf_token": csrf}
        )
        # the link failed: said by the confirmation page, after a redirect like every answer
        assert last.status_code == 303 and last.headers["location"] == "/auth/v1/verify/confirm"
        dead = await phone.get(last.headers["location"])
        assert dead.status_code == 422 and "no longer works" in dead.text
        assert "confirmation_code" not in dead.text  # no form to type into
        state = (await owner.get("/auth/v1/client")).json()["sign_up"]
        assert state["verifications"]["email_address"]["status"] == "failed"


async def test_an_expired_link_offers_a_one_click_resend() -> None:
    clock = FakeClock()
    magiclinks, mailer = make_magiclinks(BASE, clock=clock)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as asker, browser_for(app) as browser:
        old = await emailed_link(asker, mailer, "late@example.com")
        clock.advance(timedelta(minutes=11))
        # the browser that asked goes back to the app, which shows its own expired page
        back = await asker.get(old)
        assert "__magiclink_status=expired" in back.headers["location"]
        # on another device: the landing's page, with a one-click resend
        redirect = await browser.get(old)
        assert redirect.headers["location"] == "/auth/v1/verify/confirm"
        page = await browser.get(redirect.headers["location"])
        assert page.status_code == 410 and "expired" in page.text
        csrf = csrf_token(page.text)
        sent = await browser.post("/auth/v1/verify/resend", data={"csrf_token": csrf})
        assert sent.status_code == 303  # Post/Redirect/Get
        assert sent.headers["location"] == "/auth/v1/verify/sent"
        emails = len(mailer.outbox)
        for _ in range(2):  # the page, then a reload of it: nothing sent again
            shown = await browser.get(sent.headers["location"])
            assert shown.status_code == 200 and "Check your email" in shown.text
        assert len(mailer.outbox) == emails
        fresh = link_of(mailer, "late@example.com")
        assert fresh != old
        landed = await asker.get(fresh)  # the new link serves the browser that asked
        assert "__magiclink_status=verified" in landed.headers["location"]


class ReadsTogether(CountingStorage):
    """A memory storage that, once armed, holds back each sign-up it has read until
    ``together`` of them have been read: so that many requests read the same version before
    any of them writes."""

    def __init__(self, together: int) -> None:
        super().__init__(MemoryStorage())
        self.together = together
        self.armed = False
        self._arrived = 0
        self._all_in = anyio.Event()

    async def get(self, kind: Any, id: str) -> Any:
        record = await super().get(kind, id)
        if self.armed and kind.__name__ == "SignUp":
            self._arrived += 1
            if self._arrived >= self.together:
                self.armed = False
                self._all_in.set()
            await self._all_in.wait()
        return record


async def test_a_double_tap_on_resend_gets_check_your_email_twice_and_one_email() -> None:
    # the two taps carry the same cookies and form, and read the expired link together: one
    # sends the new link; the other finds it sent (a newer link that works) and says the same
    store = ReadsTogether(2)
    clock = FakeClock()
    magiclinks, mailer = make_magiclinks(BASE, storage=store, clock=clock)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as asker, browser_for(app) as phone:
        old = await emailed_link(asker, mailer, "twice@example.com")
        clock.advance(timedelta(minutes=11))
        page = await phone.get((await phone.get(old)).headers["location"])
        assert page.status_code == 410
        form = {"csrf_token": csrf_token(page.text)}
        sent = len(mailer.outbox)
        answers: list[httpx.Response] = []

        async def tap() -> None:
            answers.append(await phone.post("/auth/v1/verify/resend", data=form))

        store.armed = True
        with anyio.fail_after(10):
            async with anyio.create_task_group() as taps:
                taps.start_soon(tap)
                taps.start_soon(tap)
        assert [a.status_code for a in answers] == [303, 303], [a.text for a in answers]
        assert {a.headers["location"] for a in answers} == {"/auth/v1/verify/sent"}
        assert len(mailer.outbox) == sent + 1
        landed = await asker.get(link_of(mailer, "twice@example.com"))
        assert "__magiclink_status=verified" in landed.headers["location"]


async def test_a_link_that_expires_while_its_form_is_open_offers_the_resend() -> None:
    """The code typed after the link expired: the answer is a redirect to the confirmation
    page, which says the link expired and offers its one-click resend (a POST answer would
    offer none, and Back to it would ask to send the form again)."""
    clock = FakeClock()
    magiclinks, mailer = make_magiclinks(BASE, clock=clock)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as asker, browser_for(app) as phone:
        link = await emailed_link(asker, mailer, "slow@example.com")
        moved, form = await code_form(phone, link)
        clock.advance(timedelta(minutes=11))
        # a browser still holds the form's cookies then: they outlive the link
        held = [*moved.headers.get_list("set-cookie"), *form.headers.get_list("set-cookie")]
        for name in ("magiclink_link", "magiclink_csrf"):
            (cookie,) = [c for c in held if c.startswith(name + "=")]
            max_age = re.search(r"Max-Age=(\d+)", cookie)
            assert max_age is not None and int(max_age.group(1)) > 11 * 60, cookie
        answer = await phone.post(
            "/auth/v1/verify/confirm",
            data={"confirmation_code": "123456", "csrf_token": csrf_token(form.text)},
        )
        assert answer.status_code == 303
        page = await phone.get(answer.headers["location"])
        assert page.status_code == 410 and "expired" in page.text
        sent = await phone.post(
            "/auth/v1/verify/resend", data={"csrf_token": csrf_token(page.text)}
        )
        assert sent.status_code == 303
        assert "Check your email" in (await phone.get(sent.headers["location"])).text
        assert link_of(mailer, "slow@example.com") != link


async def test_a_resend_of_a_link_that_still_works_sends_nothing_and_shows_that_link() -> None:
    """Resend is the expired-link page's button: posted for a link that still works, it sends
    no email and keeps that link alive, and goes back to the link's own confirmation page."""
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as asker, browser_for(app) as phone:
        link = await emailed_link(asker, mailer, "live@example.com")
        _, form = await code_form(phone, link)
        sent = len(mailer.outbox)
        answer = await phone.post(
            "/auth/v1/verify/resend", data={"csrf_token": csrf_token(form.text)}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/auth/v1/verify/confirm"
        again = await phone.get(answer.headers["location"])
        assert again.status_code == 200 and "confirmation_code" in again.text
        assert len(mailer.outbox) == sent
        landed = await asker.get(link)  # the link in the inbox still works
        assert "__magiclink_status=verified" in landed.headers["location"]


async def test_deny_policy_and_missing_tokens() -> None:
    magiclinks, mailer = make_magiclinks(BASE, cross_device="deny")
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as owner, browser_for(app) as other:
        await start(owner, "deny@example.com")
        redirect = await other.get(link_of(mailer, "deny@example.com"))
        page = await other.get(redirect.headers["location"])
        assert page.status_code == 403 and "device that asked" in page.text
        assert (await other.get("/auth/v1/verify")).status_code == 400
        assert (await other.get("/auth/v1/verify/confirm")).status_code == 403
        assert (await other.delete("/auth/v1/verify/confirm")).status_code == 405


async def test_openapi_document_lists_exactly_the_served_routes() -> None:
    magiclinks, _ = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        response = await browser.get("/auth/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert {"title", "version"} <= set(document["info"])
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {(m, "/auth" + p) for m, p, _ in SERVED_ROUTES}
    assert documented == served
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    schemas = document["components"]["schemas"]
    refs = re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', response.text)
    assert refs and all(ref in schemas for ref in refs)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert operation["responses"]
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path))
    # every documented API route is routed (not a 404) by the middleware
    for route in ROUTES:
        handler, _ = ROUTER.match(route.method, route.template.replace("{id}", "x_1"))
        assert handler is route.handler


async def test_head_never_consumes_and_a_stale_session_cookie_is_cleared() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        link = await emailed_link(browser, mailer, "head@example.com")
        head = await browser.head(link)
        assert head.status_code == 303 and "token" not in head.headers["location"]
        landed = await browser.get(link)
        session_id = dict(
            p.split("=") for p in landed.headers["location"].split("?")[1].split("&")
        )["__magiclink_created_session"]
        await magiclinks.end_session(
            session_id, user_id=(await browser.get("/whoami")).json()["identity"]
        )
        client = await browser.get("/auth/v1/client")
        assert 'magiclink_session=""' in cookie_header(client, "magiclink_session")
        assert (await browser.get("/whoami")).json()["authenticated"] is False


class RecordsWrites(CountingStorage):
    """A memory storage that records every write: a batch applied, a counter spent."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())
        self.writes: list[Any] = []

    async def apply(self, changes: Any) -> None:
        self.writes.append(list[Change](changes))
        await super().apply(changes)

    async def increment(self, key: str, *, window: Any, now: Any, amount: int = 1) -> Any:
        if amount:
            self.writes.append(key)
        return await super().increment(key, window=window, now=now, amount=amount)


async def head_every_landing_route(browser: httpx.AsyncClient, link: str) -> None:
    """HEAD the link (its token then travels in the landing cookie, as after a GET), then every
    route of the landing's table, with the link's query: each answers, none fails."""
    token = link.split("token=")[1]
    assert (await browser.head(link)).status_code == 303
    for route in landing.ROUTES:
        answer = await browser.head(f"/auth{route.template}?token={token}")
        assert answer.status_code < 500 and answer.content == b"", route
        if not any(r.method == "GET" and r.template == route.template for r in landing.ROUTES):
            assert answer.status_code == 405, route  # a POST-only route: no GET to answer


@pytest.mark.parametrize("policy", ["confirm", "allow", "deny"])
async def test_a_head_on_any_landing_route_consumes_and_writes_nothing(policy: str) -> None:
    """ "A HEAD never consumes a link": not from the browser that asked (whose GET would
    complete), nor from another (whose GET would make it a client, or record a mismatch), nor
    after the link was used (a GET would give the browser that asked a fresh session cookie)."""
    store = RecordsWrites()
    magiclinks, mailer = make_magiclinks(BASE, storage=store, cross_device=policy)
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as asker, browser_for(app) as stranger:
        link = await emailed_link(asker, mailer, f"head-{policy}@example.com")
        sent = len(mailer.outbox)
        store.writes.clear()
        for browser in (asker, stranger):
            await head_every_landing_route(browser, link)
        assert store.writes == [] and len(mailer.outbox) == sent
        sign_up = (await asker.get("/auth/v1/client")).json()["sign_up"]
        assert sign_up["verifications"]["email_address"]["status"] == "unverified"
        landed = await asker.get(link)  # the link still works for the browser that asked
        assert "__magiclink_status=verified" in landed.headers["location"]
        asker.cookies.delete("magiclink_session")
        store.writes.clear()
        for browser in (asker, stranger):
            await head_every_landing_route(browser, link)
        assert store.writes == [] and len(mailer.outbox) == sent


async def test_other_paths_under_the_prefix_go_to_the_hosted_pages() -> None:
    magiclinks, _ = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks, pages=True)) as browser:
        page = await browser.get("/auth/sign-in")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert (await browser.get("/auth/v1/openapi.json")).status_code == 200
        assert (await browser.get("/whoami")).status_code == 200


async def test_allow_policy_completes_on_another_client_by_one_tap_without_a_session_for_it() -> (
    None
):
    magiclinks, mailer = make_magiclinks(BASE, cross_device="allow")
    app = build_app("starlette", magiclinks)
    async with browser_for(app) as owner, browser_for(app) as other:
        await start(owner, "allow@example.com")
        moved = await other.get(link_of(mailer, "allow@example.com"))
        assert moved.headers["location"] == "/auth/v1/verify/confirm"  # opening it: nothing
        page = await other.get(moved.headers["location"])
        assert page.status_code == 200 and "confirmation_code" not in page.text
        assert (await owner.get("/auth/v1/client")).json()["sign_up"]["status"] == (
            "missing_requirements"
        )
        landed = await other.post(
            "/auth/v1/verify/confirm", data={"csrf_token": csrf_token(page.text)}
        )
        assert not [c for c in landed.headers.get_list("set-cookie") if "session" in c]
        done = await after_confirm(other, landed)
        assert done.status_code == 200 and "You're all set" in done.text
        assert not [c for c in done.headers.get_list("set-cookie") if "session" in c]
        sign_up = (await owner.get("/auth/v1/client")).json()["sign_up"]
        assert sign_up["status"] == "complete"
        assert sign_up["verifications"]["email_address"]["verified_from_the_same_client"] is False


async def test_scope_for_websockets_and_lifespan() -> None:
    magiclinks, _ = make_magiclinks(BASE)
    seen: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    from magiclink_asgi import MagicLinkMiddleware, MagicLinkUser

    middleware = MagicLinkMiddleware(inner, magiclinks, pages=False)

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    await middleware({"type": "lifespan"}, nothing, ignore)
    await middleware(
        {"type": "websocket", "path": "/ws", "headers": [(b"cookie", b"bad;;=cookie")]},
        nothing,
        ignore,
    )
    assert "user" not in seen[0]
    user = seen[1]["user"]
    assert isinstance(user, MagicLinkUser) and not user.is_authenticated
    assert seen[1]["auth"].scopes == [] and seen[1]["magiclink"].prefix == "/auth"


async def test_the_landing_adds_its_status_to_the_apps_query_and_keeps_the_rest() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": "q@e.com"})
        prepared = await browser.post(
            f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
            json={"redirect_url": "/cb?sig=%ff&flag&a=1;b=2&q=a+b%2Bc#top"},
        )
        assert prepared.status_code == 200, prepared.text
        landed = await browser.get(link_of(mailer, "q@e.com"))
        location = landed.headers["location"]
        assert location.startswith(
            f"{BASE}/cb?sig=%ff&flag&a=1;b=2&q=a+b%2Bc&__magiclink_status=verified"
            "&__magiclink_created_session=sess_"
        ), location
        assert location.endswith("#top")


# what a query may hold: reserved and unreserved characters, %-escapes (any byte), and text
_QUERY = st.lists(
    st.one_of(
        st.sampled_from(list("=&;+,/?:@!$'()*-._~")),
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="#\\"), min_size=1),
        st.integers(0, 255).map(lambda b: f"%{b:02x}"),
    ),
).map("".join)
_FRAGMENT = st.none() | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\\"))


@given(query=_QUERY, fragment=_FRAGMENT)
@example(query="sig=%ff&flag&a=1;b=2", fragment=None)
@example(query="", fragment="")
@example(query="a=1&", fragment="x?y=1")
def test_with_status_adds_its_parameters_and_keeps_the_query_byte_for_byte(
    query: str, fragment: str | None
) -> None:
    url = f"{BASE}/cb?{query}" + ("" if fragment is None else f"#{fragment}")
    try:
        url = check_redirect_url(url, base_url=BASE, allowed_origins=())
    except InvalidRedirectError:
        return  # not a URL an app could set
    if any(
        unquote_plus(pair.split("=")[0]).startswith("__magiclink_") for pair in query.split("&")
    ):
        return  # the landing's own parameters: replaced (see below)
    added = "__magiclink_status=verified&__magiclink_created_session=sess_1"
    expected = f"{BASE}/cb?{query}{'&' if query else ''}{added}"
    expected += "" if fragment is None else f"#{fragment}"
    assert with_status(url, "verified", "sess_1") == expected


def test_with_status_replaces_the_landing_parameters_an_app_url_carried() -> None:
    # an app cannot pass a status of its own: the one the landing adds is the only one
    url = f"{BASE}/cb?__magiclink_status=verified&x=%ff&%5F%5Fmagiclink_created_session=s&y"
    assert with_status(url, "expired") == f"{BASE}/cb?x=%ff&y&__magiclink_status=expired"


async def test_a_used_link_redirects_to_the_app_with_its_status() -> None:
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        link = await emailed_link(browser, mailer, "used@example.com")
        landed = await browser.get(link)
        session = landed.headers["location"].split("__magiclink_created_session=")[1]
        # ended from elsewhere (the account page on another device): this browser keeps its
        # client, whose session is over, so the link is used up
        user_id = (await browser.get("/auth/v1/client")).json()["sessions"][0]["user_id"]
        await magiclinks.end_session(session, user_id=user_id)
        again = await browser.get(link)
        assert again.headers["location"].startswith(f"{BASE}/done?keep=1")
        assert "__magiclink_status=failed" in again.headers["location"]


async def test_without_the_hosted_pages_what_the_landing_links_to_is_served() -> None:
    # pages=False: the link landing still links a stylesheet and an icon, and apps still load
    # the browser client; each answers 200, none a 404 in the person's console
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks, pages=False)) as browser:
        link = await emailed_link(browser, mailer, "plain@example.com")
        async with browser_for(build_app("starlette", magiclinks, pages=False)) as other:
            landed = await other.get(link, follow_redirects=True)
        assert landed.status_code == 200, landed.text
        linked = re.findall(r'(?:href|src)="(/auth/static/[^"]+)"', landed.text)
        assert any("magiclink.css" in url for url in linked), landed.text
        assert any("favicon.svg" in url for url in linked), landed.text
        for url in [*linked, "/auth/static/magiclink.js"]:
            served = await browser.get(url.replace("&amp;", "&"))
            assert served.status_code == 200, url
            assert served.headers["content-type"].split(";")[0] in {
                "text/css",
                "image/svg+xml",
                "text/javascript",
            }
        css = await browser.get("/auth/static/magiclink.css")
        again = await browser.get(
            "/auth/static/magiclink.css", headers={"if-none-match": css.headers["etag"]}
        )
        assert again.status_code == 304
        assert (await browser.get("/auth/static/nothing.css")).status_code == 404
        refused = await browser.post("/auth/static/magiclink.css")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
        assert (await browser.get("/auth/sign-in")).status_code == 404  # no pages: no page


async def test_collecting_the_session_the_cookie_already_holds_changes_nothing() -> None:
    # the hosted completion page collects the session its link made (setSession): the browser
    # that clicked holds that session's cookie already, so it is kept and nothing is written
    magiclinks, mailer = make_magiclinks(BASE)
    async with browser_for(build_app("starlette", magiclinks)) as browser:
        link = await emailed_link(browser, mailer, "t@example.com")
        landed = await browser.get(link)
        created = re.search(r"__magiclink_created_session=(sess_\w+)", landed.headers["location"])
        assert created is not None
        kept = browser.cookies["magiclink_session"]
        stored = await magiclinks.storage.get(Session, created.group(1))
        touched = await browser.post(f"/auth/v1/client/sessions/{created.group(1)}/touch")
        assert touched.status_code == 200 and touched.json()["id"] == created.group(1)
        assert not touched.headers.get_list("set-cookie")
        assert browser.cookies["magiclink_session"] == kept
        assert await magiclinks.storage.get(Session, created.group(1)) == stored
        assert (await browser.get("/whoami")).json()["session"] == created.group(1)
        browser.cookies.delete("magiclink_session")  # lost: collecting it sets a fresh cookie
        again = await browser.post(f"/auth/v1/client/sessions/{created.group(1)}/touch")
        assert again.status_code == 200
        assert cookie_header(again, "magiclink_session") != f"magiclink_session={kept}"
        assert (await browser.get("/whoami")).json()["session"] == created.group(1)


async def started_with_code(
    app: Any, owner: httpx.AsyncClient, mailer: Any, kind: str
) -> tuple[str, str, str]:
    """A sign-up, or a sign-in of an account made in a browser of its own, started on
    ``owner``: the link it emailed, the confirmation code ``owner`` shows, and the path that
    sends the attempt a new email."""
    email = f"{kind}@example.com"
    if kind == "sign_in":
        async with browser_for(app) as first:
            await first.get(await emailed_link(first, mailer, email))
        created = await owner.post("/auth/v1/client/sign_ins", json={"identifier": email})
        prepare = f"/auth/v1/client/sign_ins/{created.json()['id']}/prepare_first_factor"
    else:
        created = await owner.post("/auth/v1/client/sign_ups", json={"email_address": email})
        prepare = f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification"
    prepared = await owner.post(
        prepare, json={"strategy": "email_link", "redirect_url": f"{BASE}/done"}
    )
    assert prepared.status_code == 200, prepared.text
    answer = prepared.json()
    verification = (
        answer.get("first_factor_verification") or answer["verifications"]["email_address"]
    )
    return link_of(mailer, email), verification["confirmation_code"], prepare


@pytest.mark.parametrize(
    ("kind", "again", "other", "url"),
    [
        ("sign_up", "Sign up again", "Sign in again", "/auth/sign-up"),
        ("sign_in", "Sign in again", "Sign up again", "/auth/sign-in"),
    ],
)
async def test_the_last_wrong_code_on_the_other_device_says_so_and_offers_its_flow_again(
    kind: str, again: str, other: str, url: str
) -> None:
    """The phone that typed the wrong codes is told so, as the first device is (not that the
    link was used or replaced), on the page its last answer leads to, on a reload and when
    the link is opened again; the way on is the attempt's own (sign up again for a sign-up).
    A link that died otherwise (replaced by a newer one) still gets the generic page."""
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks, pages=True)
    async with browser_for(app) as owner, browser_for(app, **{"user-agent": IPHONE}) as phone:
        link, code, prepare = await started_with_code(app, owner, mailer, kind)
        _, page = await code_form(phone, link)
        csrf = csrf_token(page.text)
        wrong = "9" * len(code) if code != "9" * len(code) else "1" * len(code)
        for _ in range(3):
            answer = await phone.post(
                "/auth/v1/verify/confirm", data={"confirmation_code": wrong, "csrf_token": csrf}
            )
        assert answer.headers["location"] == "/auth/v1/verify/confirm"
        shown = await phone.get(answer.headers["location"])
        reloaded = await phone.get(answer.headers["location"])
        _, reopened = await open_dead(phone, link)
        for dead in (shown, reloaded, reopened):
            assert dead.status_code == 422, dead.text
            assert "This link no longer works" in dead.text
            assert "Too many wrong codes were typed" in dead.text
            assert "It was used already" not in dead.text
            assert f'<a href="{url}">{again}</a>' in dead.text
            assert other not in dead.text
            assert "confirmation_code" not in dead.text  # no form to type into
        # the first device sends a new email: the phone's link is one replaced, said as before
        again = {"strategy": "email_link", "redirect_url": f"{BASE}/done"}
        assert (await owner.post(prepare, json=again)).status_code == 200
        _, replaced = await open_dead(phone, link)
        assert replaced.status_code == 422
        assert "It was used already, replaced by a newer one" in replaced.text
        assert "Too many wrong codes" not in replaced.text


async def test_a_link_whose_emailed_code_was_guessed_at_says_why_it_no_longer_works() -> None:
    """Wrong codes from the email, typed on the device that asked until its email stopped
    working, make the link of that email say so where it is opened (not the generic "no longer
    works"), with the sign-in to start again."""
    magiclinks, mailer = make_magiclinks(BASE)
    app = build_app("starlette", magiclinks, pages=True)
    async with browser_for(app) as owner, browser_for(app, **{"user-agent": IPHONE}) as phone:
        link, _, prepare = await started_with_code(app, owner, mailer, "sign_in")
        emailed = mailer.outbox[-1].email_code
        assert emailed is not None
        wrong = "1" * len(emailed) if emailed != "1" * len(emailed) else "2" * len(emailed)
        attempt = prepare.replace("prepare_first_factor", "attempt_first_factor")
        for _ in range(magiclinks.settings.max_email_code_attempts):
            typed = await owner.post(attempt, json={"strategy": "email_code", "code": wrong})
            assert typed.status_code == 422, typed.text
        assert typed.json()["errors"][0]["code"] == "failed"  # the email no longer works
        _, dead = await open_dead(phone, link)
        assert dead.status_code == 422, dead.text
        assert "Too many wrong codes were typed" in dead.text
        assert '<a href="/auth/sign-in">Sign in again</a>' in dead.text


async def open_dead(phone: httpx.AsyncClient, link: str) -> tuple[httpx.Response, httpx.Response]:
    """Open a link that no longer works on another device: the landing's redirect, and the
    page it leads to."""
    moved = await phone.get(link)
    assert moved.status_code == 303, moved.text
    return moved, await phone.get(moved.headers["location"])
