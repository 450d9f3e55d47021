"""The Litestar example of docs/pages.md runs as written: its lifespan starts and stops, the
hosted pages and the API answer under /auth (Litestar itself never sees them), and its routes
see the signed-in user after a real sign-up and click."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from magiclink_core import mailers
from magiclink_core.mailers import ConsoleMailer
from tests.support import link_in
from tests.test_readme import lifespan_of

pytestmark = pytest.mark.anyio
DOCS = Path(__file__).resolve().parents[2] / "docs" / "pages.md"
BASE = "http://127.0.0.1:8000"


def litestar_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    (found,) = [b for b in blocks if "from litestar import" in b]
    return found


async def test_the_litestar_example_serves_the_pages_and_its_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAGICLINK_SECRET", "s" * 48)
    # the example's ConsoleMailer prints to standard output: here, to a buffer this test reads
    printed = io.StringIO()
    monkeypatch.setattr(mailers, "ConsoleMailer", lambda: ConsoleMailer(stream=printed))
    # as a module of its own, as `uvicorn app:app` imports it (Litestar reads the handlers'
    # annotations through their module)
    module = ModuleType("docs_litestar")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(litestar_block(), "docs/pages.md", "exec"), module.__dict__)
    app = module.app
    async with (
        lifespan_of(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url=BASE, headers={"origin": BASE}
        ) as browser,
    ):
        home = await browser.get("/")
        assert home.is_redirect
        assert home.headers["location"] == "/auth/sign-in?redirect_url=/"
        assert (await browser.get("/me")).status_code == 401  # require_user
        page = await browser.get("/auth/sign-in")
        assert page.status_code == 200 and "<magiclink-sign-in " in page.text
        assert (await browser.get("/auth/static/magiclink.js")).status_code == 200

        sign_up = await browser.post(
            "/auth/v1/client/sign_ups", json={"email_address": "ada@example.com"}
        )
        prepared = await browser.post(
            f"/auth/v1/client/sign_ups/{sign_up.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": BASE + "/"},
        )
        assert prepared.status_code == 200, prepared.text
        click = await browser.get(link_in(printed.getvalue()))  # the printed email
        assert click.status_code == 303

        assert (await browser.get("/me")).json()["email"] == "ada@example.com"
        assert (await browser.get("/")).text == "Hello ada@example.com"
    assert (tmp_path / "magiclink.sqlite3").exists()
