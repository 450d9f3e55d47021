"""Flooding the sign-in and sign-up endpoints from one network (to enumerate, to fill storage, or
to set up email bombing): every attempt started from a client IP counts, valid or not, and
beyond ``attempts_per_ip`` (30 an hour by default) the network is refused with a 429 that says
when to come back. The counter lives in the configured storage, so two instances share it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from magiclink_core import Event, MagicLinks, RateLimitedError, RequestInfo, Settings
from magiclink_core.mailers import MemoryMailer
from magiclink_core.testing import FakeClock
from tests.core._services import SERVERS, Server, storages
from tests.support import SECRET

from ._http import assert_limited, make_app, start_sign_in

pytestmark = pytest.mark.anyio
REASON = "Too many sign-ins and sign-ups were started from your network."


async def test_one_network_starts_thirty_attempts_an_hour_then_is_told_to_wait() -> None:
    app = make_app()  # the defaults
    async with app.browser("203.0.113.7") as attacker:
        for n in range(20):
            assert (await start_sign_in(attacker, f"user{n}@example.org")).status_code == 200
        for n in range(10):  # sign-ups spend the same budget
            created = await attacker.post(
                "/auth/v1/client/sign_ups", json={"email_address": f"new{n}@example.org"}
            )
            assert created.status_code == 200
        refused = await start_sign_in(attacker, "one-more@example.org")
    assert_limited(refused, REASON)
    assert int(refused.headers["retry-after"]) <= 3600
    (event,) = app.of(Event.RATE_LIMITED)
    assert (event.reason, event.ip_address) == ("attempts_per_ip", "203.0.113.7")


async def test_invalid_addresses_spend_the_budget_too() -> None:
    app = make_app(attempts_per_ip=3)
    async with app.browser() as attacker:
        for junk in ["not-an-address", "a@", "@b.example"]:
            assert (await start_sign_in(attacker, junk)).status_code == 422
        assert_limited(await start_sign_in(attacker, "ann@example.org"), REASON)


async def test_another_network_is_not_affected() -> None:
    app = make_app(attempts_per_ip=2)
    async with app.browser("203.0.113.7") as attacker, app.browser("198.51.100.20") as person:
        for _ in range(2):
            await start_sign_in(attacker, "ann@example.org")
        assert (await start_sign_in(attacker, "ann@example.org")).status_code == 429
        assert (await start_sign_in(person, "ann@example.org")).status_code == 200


async def test_the_network_may_start_again_once_the_window_has_passed() -> None:
    clock = FakeClock()
    app = make_app(attempts_per_ip=2, clock=clock)
    async with app.browser() as browser:
        for _ in range(2):
            await start_sign_in(browser, "ann@example.org")
        refused = await start_sign_in(browser, "ann@example.org")
        assert refused.status_code == 429
        clock.advance(timedelta(seconds=int(refused.headers["retry-after"])))
        assert (await start_sign_in(browser, "ann@example.org")).status_code == 200


@pytest.mark.parametrize("kind", SERVERS)
async def test_two_instances_share_one_budget(kind: Server) -> None:
    clock = FakeClock()
    settings = Settings(secret=SECRET, base_url="https://app.example.com", attempts_per_ip=4)
    asking = RequestInfo(ip_address="203.0.113.7")
    async with storages(kind, count=2) as (store_a, store_b):
        a = MagicLinks(settings, storage=store_a, mailer=MemoryMailer(), clock=clock)
        b = MagicLinks(settings, storage=store_b, mailer=MemoryMailer(), clock=clock)
        client_a, _ = await a.create_client()
        client_b, _ = await b.create_client()
        for links, client in [(a, client_a), (b, client_b)] * 2:
            await links.create_sign_in(client, "ann@example.org", request=asking)
        for links, client in [(a, client_a), (b, client_b)]:
            with pytest.raises(RateLimitedError):
                await links.create_sign_in(client, "ann@example.org", request=asking)
