"""Stale links: a newer sign-in or sign-up started by the same client for the same address
kills the older attempt's link (a link left in a mailbox is a link someone else may open); a
sign-in started on another client leaves the first one alone."""

from __future__ import annotations

import pytest

from ._http import make_app
from ._links import sign_in, sign_up, signed_up, status_of

pytestmark = pytest.mark.anyio


async def _dead(browser, link: str) -> bool:  # type: ignore[no-untyped-def]
    landed = await browser.get(link)
    return landed.status_code == 303 and "__magiclink_status=failed" in landed.headers["location"]


async def test_a_newer_sign_in_of_the_client_kills_the_older_link() -> None:
    app = make_app()
    async with app.browser("192.0.2.1") as first, app.browser() as browser:
        await signed_up(app, first, "ann@example.org")
        _, old = await sign_in(app, browser, "ann@example.org")
        _, new = await sign_in(app, browser, "ann@example.org")
        assert await _dead(browser, old)
        assert "__magiclink_status=verified" in (await browser.get(new)).headers["location"]


async def test_a_newer_sign_up_of_the_client_kills_the_older_link() -> None:
    app = make_app()
    async with app.browser() as browser:
        _, old = await sign_up(app, browser, "ann@example.org")
        _, new = await sign_up(app, browser, "ann@example.org")
        assert await _dead(browser, old)
        assert "__magiclink_status=verified" in (await browser.get(new)).headers["location"]


@pytest.mark.parametrize("order", ["sign_up then sign_in", "sign_in then sign_up"])
async def test_switching_between_sign_up_and_sign_in_for_one_address_kills_the_older(
    order: str,
) -> None:
    app = make_app()
    async with app.browser("192.0.2.1") as first, app.browser() as browser:
        await signed_up(app, first, "ann@example.org")
        steps = [sign_up, sign_in] if order.startswith("sign_up") else [sign_in, sign_up]
        _, old = await steps[0](app, browser, "ann@example.org")
        _, new = await steps[1](app, browser, "ann@example.org")
        assert await _dead(browser, old)
        assert "__magiclink_status=verified" in (await browser.get(new)).headers["location"]


async def test_another_address_or_another_client_leaves_the_first_alone() -> None:
    app = make_app()
    async with app.browser("192.0.2.1") as first, app.browser() as laptop:
        await signed_up(app, first, "ann@example.org")
        _, link = await sign_in(app, laptop, "ann@example.org")
        async with app.browser("192.0.2.44") as phone:
            await sign_in(app, phone, "ann@example.org")  # another client: its own attempt
        await sign_up(app, laptop, "bob@example.org")  # the same client, another address
        assert "__magiclink_status=verified" in (await laptop.get(link)).headers["location"]
        assert await status_of(laptop, "sign_in") == "complete"
