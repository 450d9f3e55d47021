"""Link poisoning: a prepare sent with a forged ``Host`` (and ``X-Forwarded-Host``) must not put
the attacker's host into the emailed link. Links are built from ``base_url`` only."""

from __future__ import annotations

import pytest

from ._http import BASE, make_app
from ._links import last_link

pytestmark = pytest.mark.anyio

FORGED = {
    "host": "evil.example",
    "x-forwarded-host": "evil.example",
    "forwarded": "host=evil.example",
}


@pytest.mark.parametrize("kind", ["sign_up", "sign_in"])
async def test_a_forged_host_does_not_reach_the_link(kind: str) -> None:
    app = make_app()
    async with app.browser() as owner, app.browser(headers=FORGED) as attacker:
        if kind == "sign_in":  # an account to sign in to
            created = await owner.post(
                "/auth/v1/client/sign_ups", json={"email_address": "ann@example.org"}
            )
            await owner.post(
                f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
                json={"strategy": "email_link", "redirect_url": "/"},
            )
            await owner.get(last_link(app, "ann@example.org"))
            path, body = "/auth/v1/client/sign_ins", {"identifier": "ann@example.org"}
            prepare = "prepare_first_factor"
        else:
            path, body = "/auth/v1/client/sign_ups", {"email_address": "ann@example.org"}
            prepare = "prepare_verification"
        created = await attacker.post(path, json=body)
        assert created.status_code == 200, created.text
        prepared = await attacker.post(
            f"{path}/{created.json()['id']}/{prepare}",
            json={"strategy": "email_link", "redirect_url": "/"},
        )
        assert prepared.status_code == 200, prepared.text
    message = app.mailer.last_to("ann@example.org")
    assert message is not None
    assert last_link(app, "ann@example.org").startswith(f"{BASE}/auth/v1/verify?token=")
    assert "evil" not in message.text and "evil" not in (message.html or "")
