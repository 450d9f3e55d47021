"""The demo app's own pages (the host app of ``magiclink demo``): what a newcomer sees first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e._steps import create_account
from tests.e2e.conftest import DESKTOP, PHONE, Server

# a real-looking address too long for one line of a phone's heading
LONG = "firstname.middlename.lastname{n}@department.example-company.org"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("path", ["/welcome", "/", "/protected"])
def test_a_long_address_wraps_inside_the_card_instead_of_being_cut(
    device: Any, server: Server, viewport: dict[str, int], path: str
) -> None:
    context = device(viewport)
    email = LONG.format(n=server.email("x").split("@")[0][-6:])
    create_account(context, server, email)
    page = context.new_page()
    page.goto(path)
    card = page.locator(".ml-card")
    assert email in card.inner_text()
    # nothing in the card is wider than the card: a cut-off address would be
    clipped = card.evaluate(
        """card => [...card.querySelectorAll('*')].filter(
            el => el.getBoundingClientRect().right > card.getBoundingClientRect().right + 0.5
        ).map(el => el.outerHTML.slice(0, 80))"""
    )
    assert clipped == []
    assert card.evaluate("card => card.scrollWidth <= card.clientWidth")
