"""Taking over an account from a stolen or left-open session by changing its addresses (add
one's own, make it primary, remove the owner's). Each change needs a recent sign-in
(``reverification_window``, 10 minutes by default): an older session is refused with 403
``reverification_required`` until the person signs in again with a fresh link or code to a
verified address. Each change is told to the user's other verified addresses by email, and an
address removed (or replaced as primary) takes its pending link with it. Sessions stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from magiclink_core import (
    Client,
    EmailRenderer,
    Event,
    MagicLinkError,
    MagicLinks,
    RequestInfo,
    ReverificationRequiredError,
    Session,
    Settings,
)
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET, link_in

from ..core._support import World, make_world, signed_up
from ._http import App, make_app

pytestmark = pytest.mark.anyio
STALE = timedelta(minutes=11)
PHONE = RequestInfo(ip_address="198.51.100.20", device="Safari 17 on iOS")


async def sign_up_over_http(app: App, browser: httpx.AsyncClient, email: str) -> None:
    created = await browser.post("/auth/v1/client/sign_ups", json={"email_address": email})
    await browser.post(
        f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
        json={"strategy": "email_link", "redirect_url": "/"},
    )
    message = app.mailer.last_to(email)
    assert message is not None
    assert (await browser.get(link_in(message.text))).status_code == 303


async def test_a_stale_session_cannot_add_remove_or_make_primary() -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    async with app.browser() as thief:
        await sign_up_over_http(app, thief, "ann@example.org")
        added = await thief.post("/auth/v1/me/email_addresses", json={"email_address": "w@e.org"})
        assert added.status_code == 200  # a recent sign-in may
        me = (await thief.get("/auth/v1/me")).json()
        clock.advance(STALE)
        answers = [
            await thief.post("/auth/v1/me/email_addresses", json={"email_address": "x@e.org"}),
            await thief.delete(f"/auth/v1/me/email_addresses/{added.json()['id']}"),
            await thief.patch("/auth/v1/me", json={"primary_email_address_id": added.json()["id"]}),
        ]
        for answer in answers:
            assert answer.status_code == 403, answer.text
            error = answer.json()["errors"][0]
            assert error["code"] == "reverification_required"
            assert "Sign in again" in error["long_message"]
        assert (await thief.get("/auth/v1/me")).json() == me  # nothing changed
    refused = app.of(Event.REVERIFICATION_REQUIRED)
    assert [e.reason for e in refused] == [
        "add_email_address",
        "remove_email_address",
        "set_primary_email_address",
    ]


async def test_signing_in_again_with_a_fresh_code_allows_the_change() -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    async with app.browser() as person:
        await sign_up_over_http(app, person, "ann@example.org")
        clock.advance(STALE)
        new = {"email_address": "work@example.org"}
        refused = await person.post("/auth/v1/me/email_addresses", json=new)
        assert refused.status_code == 403
        # the client's answer: sign in again with a fresh code to a verified address
        sign_in = await person.post(
            "/auth/v1/client/sign_ins", json={"identifier": "ann@example.org"}
        )
        base = f"/auth/v1/client/sign_ins/{sign_in.json()['id']}"
        await person.post(f"{base}/prepare_first_factor", json={"strategy": "email_code"})
        message = app.mailer.last_to("ann@example.org")
        assert message is not None and message.email_code is not None
        done = await person.post(f"{base}/attempt_first_factor", json={"code": message.email_code})
        assert done.json()["status"] == "complete"
        retried = await person.post("/auth/v1/me/email_addresses", json=new)
        assert retried.status_code == 200, retried.text


async def test_the_window_is_a_setting_and_can_be_turned_off() -> None:
    for window, allowed in [(timedelta(hours=1), True), (timedelta(minutes=5), False)]:
        world = make_world(reverification_window=window)
        _, token = await signed_up(world)
        world.clock.advance(minutes=30)
        session = await world.links.require_session(token)
        if allowed:
            await world.links.add_email_address(session, "work@example.org")
        else:
            with pytest.raises(ReverificationRequiredError):
                await world.links.add_email_address(session, "work@example.org")
    world = make_world(reverification_window=None)
    _, token = await signed_up(world)
    world.clock.advance(days=6)
    await world.links.add_email_address(await world.links.require_session(token), "w@e.org")
    for bad in [timedelta(0), timedelta(days=31)]:
        with pytest.raises(ValueError, match="reverification_window"):
            Settings(secret=SECRET, base_url="https://app.example.com", reverification_window=bad)


async def verified(world: World, client: Client, session: Session, email: str) -> str:
    """Add ``email`` to the session's user and verify it by its link; its id."""
    address = await world.links.add_email_address(session, email)
    await world.links.prepare_email_verification(session, address.id, redirect_url="/")
    await world.links.verify_link(world.last_link(email), client)
    return address.id


def notices(world: World, kind: str) -> dict[str, str]:
    """Each address that got a ``kind`` notice, and its text."""
    return {m.to: m.text for m in world.mailer.outbox if m.kind == kind}


async def test_each_change_is_told_to_the_other_verified_addresses() -> None:
    world = make_world()
    client, token = await signed_up(world, "ann@example.org")
    session = await world.links.require_session(token)
    work = await verified(world, client, session, "work@example.org")
    world.mailer.outbox.clear()

    added = await world.links.add_email_address(session, "thief@evil.example", request=PHONE)
    told = notices(world, "email_address_added")
    assert set(told) == {"ann@example.org", "work@example.org"}  # not the added one
    for text in told.values():
        assert "thief@evil.example was added to your" in text
        assert "Safari 17 on iOS (198.51.100.20)" in text
        assert "token=" not in text and "sign out the sessions" in text

    await world.links.set_primary_email_address(session, work, request=PHONE)
    told = notices(world, "primary_email_address_changed")
    assert set(told) == {"ann@example.org"}  # the replaced primary hears of it
    assert "work@example.org is now the primary email address" in told["ann@example.org"]

    await world.links.remove_email_address(session, added.id, request=PHONE)
    told = notices(world, "email_address_removed")
    assert set(told) == {"ann@example.org", "work@example.org"}
    assert all(m.email_code is None for m in world.mailer.outbox)


async def test_a_removed_address_takes_its_pending_link_with_it() -> None:
    world = make_world()
    client, token = await signed_up(world)
    session = await world.links.require_session(token)
    address = await world.links.add_email_address(session, "thief@evil.example")
    await world.links.prepare_email_verification(session, address.id, redirect_url="/")
    link = world.last_link("thief@evil.example")
    await world.links.remove_email_address(session, address.id)
    with pytest.raises(MagicLinkError):
        await world.links.verify_link(link, client)
    assert [a.email for a in await world.links.list_email_addresses(session.user_id)] == [
        "ann@example.org"
    ]


async def test_a_sign_in_link_sent_to_a_removed_address_signs_nobody_in() -> None:
    world = make_world()
    client, token = await signed_up(world, "ann@example.org")
    session = await world.links.require_session(token)
    work = await verified(world, client, session, "work@example.org")
    stranger = await world.client()
    sign_in = await world.links.create_sign_in(stranger, "work@example.org")
    await world.links.prepare_first_factor(stranger, sign_in.id, redirect_url="/")
    link = world.last_link("work@example.org")
    await world.links.remove_email_address(session, work)
    with pytest.raises(MagicLinkError):
        await world.links.verify_link(link, stranger)
    assert (await world.links.client_state(stranger)).sessions == []


async def test_sessions_stay_after_a_change() -> None:
    world = make_world()
    _, token = await signed_up(world)
    other, _ = await signed_up_again(world, "ann@example.org")
    session = await world.links.require_session(token)
    await world.links.add_email_address(session, "work@example.org")
    assert await world.links.authenticate(token) is not None
    assert await world.links.authenticate(other) is not None
    assert await world.links.revoke_sessions(session.user_id) == 2  # the way out, if needed


async def signed_up_again(world: World, email: str) -> tuple[str, str]:
    """A second session of the account of ``email``, on a new client: its token."""
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, email)
    await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    result = await world.links.verify_link(world.last_link(email), client)
    assert result.session_token is not None
    return result.session_token, client.id


async def test_notices_are_rendered_from_the_app_s_own_templates(tmp_path: Path) -> None:
    (tmp_path / "email_address_added.txt").write_text(
        "{% block subject %}Heads up{% endblock %}Added: {{ email.email_address }}\n"
    )
    clock = FakeClock()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="https://app.example.com", links_per_address=0),
        storage=MemoryStorage(),
        mailer=MemoryMailer(),
        clock=clock,
        emails=EmailRenderer(tmp_path),
    )
    world = World(links, links.storage, links.mailer, clock)  # type: ignore[arg-type]
    _, token = await signed_up(world)
    await links.add_email_address(await links.require_session(token), "w@example.org")
    message = world.mailer.last_to("ann@example.org")
    assert message is not None
    assert message.subject == "Heads up" and message.text.endswith("Added: w@example.org\n")
