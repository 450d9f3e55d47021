"""An email that cannot be rendered (a typo in a custom template), over a real server: the
prepare answers a typed JSON error, not a 500, and the attempt and its earlier link are as
they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import BreakableRenderer

from .harness import serve

pytestmark = pytest.mark.anyio


async def test_a_template_typo_answers_a_typed_error_and_changes_nothing(tmp_path: Path) -> None:
    renderer = BreakableRenderer(tmp_path)
    async with serve("starlette", emails=renderer) as server, server.browser() as browser:
        welcome = f"{server.base_url}/whoami"
        prepared = await browser.start_sign_up("ann@example.org", welcome)
        await server.magiclinks.mail_sent()
        link = server.last_link("ann@example.org")
        path = f"/client/sign_ups/{prepared['id']}"
        before = (await browser.api("GET", path)).json()

        renderer.broken = True
        again = await browser.api(
            "POST",
            f"{path}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": welcome},
        )
        assert again.status_code == 502, again.text
        assert again.headers["content-type"].startswith("application/json")
        (error,) = again.json()["errors"]
        assert error["code"] == "mail_delivery_failed"
        assert "lnk_url" not in again.text  # the cause is for the log, not the browser
        assert (await browser.api("GET", path)).json() == before
        await server.magiclinks.mail_sent()
        assert len(server.mailer.outbox) == 1

        renderer.broken = False
        landed = await browser.get(link)  # the link sent before still signs up
        assert landed.status_code == 303, landed.text
        assert "__magiclink_status=verified" in landed.headers["location"]
        assert (await browser.whoami())["authenticated"] is True
