"""The emails: subject naming the app, the link, its validity, the device; overridable."""

from pathlib import Path

import pytest

from magiclink_core import EmailRenderer, MagicLinks, RequestInfo, Settings
from magiclink_core.mailers import ConsoleMailer, MemoryMailer
from magiclink_core.storage import MemoryStorage
from tests.support import SECRET

from ._support import make_world

pytestmark = pytest.mark.anyio


async def test_the_sign_in_email_says_what_a_person_needs_to_know() -> None:
    world = make_world(app_name="Acme Notes")
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    await world.links.prepare_sign_up_verification(
        client,
        sign_up.id,
        redirect_url="/",
        request=RequestInfo(
            user_agent="Mozilla/5.0", ip_address="203.0.113.9", device="Firefox 120 on Ubuntu"
        ),
    )
    (message,) = world.mailer.outbox
    assert message.to == "ann@example.org" and "Acme Notes" in message.subject
    token = world.last_link("ann@example.org")
    for body in (message.text, message.html):
        assert f"https://app.example.com/auth/v1/verify?token={token}" in body
        assert "10 minutes" in body and "Firefox 120 on Ubuntu" in body and "203.0.113.9" in body
    assert "<html" in message.html and "<html" not in message.text


async def test_html_bodies_escape_what_users_typed() -> None:
    world = make_world(app_name="<b>Acme</b>")
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    await world.links.prepare_sign_up_verification(
        client, sign_up.id, redirect_url="/", request=RequestInfo(device="<script>x</script>")
    )
    html = world.mailer.outbox[0].html
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


async def test_templates_can_be_overridden(tmp_path: Path) -> None:
    (tmp_path / "sign_up.txt").write_text(
        '{% extends "_base.txt" %}{% block subject %}Join {{ app_name }}!{% endblock %}'
        "{% block body %}Custom: {{ email.link_url }}{% endblock %}"
    )
    mailer = MemoryMailer()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="https://app.example.com", app_name="Acme"),
        storage=MemoryStorage(),
        mailer=mailer,
        emails=EmailRenderer(tmp_path),
    )
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    message = mailer.outbox[0]
    assert message.subject == "Join Acme!" and message.text.startswith("Custom: https://")
    assert "Confirm and sign up" in message.html  # the HTML part was not overridden


async def test_the_console_mailer_prints_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    stream = io.StringIO()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="https://app.example.com"),
        storage=MemoryStorage(),
        mailer=ConsoleMailer(stream),
    )
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert "To: ann@example.org" in stream.getvalue() and "token=mll1_" in stream.getvalue()
