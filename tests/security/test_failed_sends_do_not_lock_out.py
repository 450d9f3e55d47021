"""A mail server that refuses for a while must not lock a person out: only links handed to the
mail server count against the address's link limit (the attack: make the server fail, or wait
for it to, and every retry spends the victim's budget)."""

from __future__ import annotations

import anyio
import pytest

from magiclink_core import MailDeliveryError, RateLimitedError
from magiclink_core.testing import FakeClock

from ..core._smtp_server import SMTPServer, Transaction, running
from ..core.test_mail_delivery import make_links

pytestmark = pytest.mark.anyio


async def test_five_refused_sends_then_the_server_recovers_and_a_link_goes_out() -> None:
    refusing = {"on": True}

    def fate(transaction: Transaction) -> str:
        return "550" if refusing["on"] else "ok"

    with running(SMTPServer(fate=fate)) as server:  # type: ignore[arg-type]
        links = make_links(server, FakeClock(), links_per_address=5)
        client, _ = await links.create_client()
        sign_up = await links.create_sign_up(client, "ann@example.org")
        for _ in range(5):
            with pytest.raises(MailDeliveryError):
                await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        refusing["on"] = False
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        assert len(server.received) == 1
        for _ in range(4):  # the limit still holds for links that did go out
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        with pytest.raises(RateLimitedError):
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        await links.aclose()


async def test_queued_sends_count_only_once_delivered() -> None:
    with running(SMTPServer(fate=lambda t: "550" if t.number < 5 else "ok")) as server:
        links = make_links(server, FakeClock(), links_per_address=5)
        async with links:
            client, _ = await links.create_client()
            sign_up = await links.create_sign_up(client, "ann@example.org")
            for _ in range(5):  # answered at once; refused in the background
                await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
                with anyio.fail_after(10):
                    await links.mail_sent()
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
            with anyio.fail_after(10):
                await links.mail_sent()
            assert len(server.received) == 1
