"""Email bombing: using the app to flood mailboxes. One address gets at most
``links_per_address`` emails per window (only those handed to the mail server count, so a
failing server cannot lock a person out); one network may ask for at most ``links_per_ip``
emails per window across addresses (every ask counts, sent or not). Beyond either: a 429 with
``Retry-After``, nothing sent, and a ``rate_limited`` event."""

from __future__ import annotations

import pytest

from magiclink_core import Event, RateLimitedError, RequestInfo
from magiclink_core.testing import FakeClock

from ._http import assert_limited, make_app, send_link

pytestmark = pytest.mark.anyio
FROM_NETWORK = "Too many emails were asked for from your network."
TO_ADDRESS = "Too many emails were sent to this address lately."


async def test_one_network_cannot_mail_many_addresses() -> None:
    app = make_app(attempts_per_ip=1000)  # links_per_ip: the default, 30 an hour
    async with app.browser("203.0.113.7") as attacker:
        for n in range(30):
            assert (await send_link(attacker, f"victim{n}@example.org")).status_code == 200
        refused = await send_link(attacker, "victim-30@example.org")
    assert_limited(refused, FROM_NETWORK)
    assert len(app.mailer.outbox) == 30
    assert app.mailer.last_to("victim-30@example.org") is None
    (event,) = app.of(Event.RATE_LIMITED)
    assert event.reason == "links_per_ip" and event.ip_address == "203.0.113.7"
    assert event.email_address == "victim-30@example.org"


async def test_one_address_gets_a_few_emails_then_is_left_alone() -> None:
    app = make_app()  # links_per_address: the default, 5 every 10 minutes
    for n in range(5):  # from five networks: the address's own budget still holds
        async with app.browser(f"198.51.100.{n}") as attacker:
            assert (await send_link(attacker, "victim@example.org")).status_code == 200
    async with app.browser("198.51.100.99") as attacker:
        refused = await send_link(attacker, "victim@example.org")
    assert_limited(refused, TO_ADDRESS)
    assert int(refused.headers["retry-after"]) <= 600
    assert len(app.mailer.outbox) == 5
    assert [e.reason for e in app.of(Event.RATE_LIMITED)] == ["links_per_address"]


async def test_other_networks_may_still_ask_for_their_own_emails() -> None:
    app = make_app(links_per_ip=2)
    async with app.browser("203.0.113.7") as attacker, app.browser("198.51.100.20") as person:
        for n in range(2):
            await send_link(attacker, f"victim{n}@example.org")
        assert (await send_link(attacker, "ann@example.org")).status_code == 429
        assert (await send_link(person, "ann@example.org")).status_code == 200
    assert app.mailer.last_to("ann@example.org") is not None


async def test_a_resend_from_the_expired_link_page_counts_against_the_asking_network() -> None:
    clock = FakeClock()
    app = make_app(links_per_ip=1, clock=clock)
    links = app.magiclinks
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    asked_by = RequestInfo(ip_address="198.51.100.20", device="Firefox on Ubuntu")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/", request=asked_by)
    token = app.mailer.outbox[-1].text.split("token=")[1].split()[0]
    resender = RequestInfo(ip_address="203.0.113.7")
    clock.advance(minutes=11)  # the link expired: the page offers its resend
    await links.resend_link(token, request=resender)  # the resending network's one email
    newest = app.mailer.outbox[-1]
    assert "Firefox on Ubuntu" in newest.text  # named after the device that first asked
    clock.advance(minutes=11)  # the new link expired too
    with pytest.raises(RateLimitedError):
        await links.resend_link(token, request=resender)
    assert len(app.mailer.outbox) == 2
