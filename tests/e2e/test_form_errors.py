"""An error that is not about what was typed (a spent budget, the storage down) is said under
the field like any other, but the field is not marked invalid: typing another address would not
help, and assistive technology would say the address is wrong. The server's word on an address
(422) still marks it (``test_email_fields.py``).

This module's server keeps its records in a SQLite file that a test can lock as another process
would, and allows one link per address."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from magiclink_core.storage import SQLiteStorage
from tests.e2e._steps import signed_in
from tests.e2e.conftest import Server, serve_demo

UNAVAILABLE = "Temporarily unavailable. Please try again in a few seconds."
SPENT = re.compile(r"^Too many emails were sent to this address lately\.")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("form-errors") / "magiclink.db"


@pytest.fixture(scope="module")
def server(database: Path) -> Iterator[Server]:
    storage = SQLiteStorage(database, busy_timeout=timedelta(seconds=30))
    with serve_demo(
        storage=storage, storage_timeout=timedelta(seconds=1), links_per_address=1
    ) as running:
        yield running


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another process holds the database's write lock (a VACUUM, a stuck writer)."""
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def said_but_not_invalid(page: Any, field: Any, typed: str, message: str | re.Pattern[str]) -> None:
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(message)
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", alert.get_attribute("id") or "")
    expect(field).to_be_focused()
    expect(field).to_have_value(typed)  # kept, to send again


def test_a_spent_budget_on_the_sign_up_form_does_not_mark_the_address(
    device: Any, server: Server
) -> None:
    email = server.email("budget")
    first = device().new_page()
    first.goto("/auth/sign-up")
    first.get_by_label("Email address").fill(email)
    first.get_by_role("button", name="Continue").click()
    expect(first.get_by_role("heading", name="Check your email")).to_be_visible()

    page = device().new_page()
    page.goto("/auth/sign-up")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    said_but_not_invalid(page, page.get_by_label("Email address"), email, SPENT)


def test_the_storage_down_on_the_sign_in_form_does_not_mark_the_address(
    device: Any, server: Server, database: Path
) -> None:
    page = device().new_page()
    page.goto("/auth/sign-in")
    field = page.get_by_label("Email address")
    expect(field).to_be_visible()
    email = server.email("outage")
    with write_lock_held(database):
        field.fill(email)
        page.get_by_role("button", name="Continue").click()
        said_but_not_invalid(page, field, email, UNAVAILABLE)
    page.get_by_role("button", name="Continue").click()  # the lock gone, the same form sends it
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()


def test_the_storage_down_on_the_account_pages_add_form_does_not_mark_the_address(
    device: Any, server: Server, database: Path
) -> None:
    _, _, page = signed_in(device, server, "adder")
    page.goto("/auth/user")
    field = page.get_by_label("Add an email address")
    expect(field).to_be_visible()
    other = server.email("second")
    with write_lock_held(database):
        field.fill(other)
        page.get_by_role("button", name="Add", exact=True).click()
        said_but_not_invalid(page, field, other, UNAVAILABLE)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(f'[data-email="{other}"]')).to_contain_text("Check your email")
