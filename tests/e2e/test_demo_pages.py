"""The demo app's own pages (the host app of ``magiclink demo``): what a newcomer sees first."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e._steps import create_account, lines_spanned
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


def test_a_long_address_breaks_after_its_at_sign_not_inside_its_domain(
    device: Any, server: Server
) -> None:
    """The demo's welcome heading on a laptop: a long address wraps after the "@" (as a
    newcomer's did, "…@example.o" then "rg", before)."""
    email = f"newcomer{time.time_ns() % 10**14:014d}@example.org"  # no hyphen to break at
    context = device(DESKTOP)
    create_account(context, server, email)
    page = context.new_page()
    page.goto("/welcome")
    heading = page.get_by_role("heading", name=f"Welcome, {email}")
    expect(heading).to_be_visible()
    lines = lines_spanned(heading, email.partition("@")[2])
    assert lines == 1, f"the domain of {email} is split over {lines} lines"
