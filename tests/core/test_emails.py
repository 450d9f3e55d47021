"""The emails: subject naming the app, the link, its validity, the device; overridable; one
that fails to render is a typed error that changes nothing."""

import logging
import traceback
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magiclink_core import (
    AttemptKind,
    AuthEvent,
    EmailRenderer,
    Event,
    MagicLinks,
    MailDeliveryError,
    RateLimitedError,
    RequestInfo,
    Settings,
)
from magiclink_core.domain.tokens import TOKEN_IN_TEXT
from magiclink_core.emails import LinkEmail, NoticeEmail
from magiclink_core.emails.renderer import NOTICE_TEMPLATES
from magiclink_core.mailers import ConsoleMailer, MemoryMailer
from magiclink_core.ports import Change, EmailMessage
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET, BreakableRenderer, token_in

from ._support import make_world, signed_up

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


class WritesSeen(MemoryStorage):
    """Memory storage that keeps every batch it was asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[Sequence[Change]] = []

    async def apply(self, changes: Sequence[Change]) -> None:
        self.batches.append(changes)
        await super().apply(changes)


@pytest.mark.parametrize("running", [False, True], ids=["inline", "queued"])
async def test_an_email_that_fails_to_render_writes_nothing_and_is_a_typed_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, running: bool
) -> None:
    """A template typo is found before anything is written: the sign-up keeps its verification
    and the link already sent keeps working; the caller gets a permanent MailDeliveryError; the
    log has the traceback once, and no token."""
    renderer = BreakableRenderer(tmp_path)
    storage, mailer = WritesSeen(), MemoryMailer()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="https://app.example.com", links_per_address=0),
        storage=storage,
        mailer=mailer,
        clock=FakeClock(),
        emails=renderer,
    )
    async with AsyncExitStack() as stack:
        if running:
            await stack.enter_async_context(links)
        client, _ = await links.create_client()
        sign_up = await links.create_sign_up(client, "ann@example.org")
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        await links.mail_sent()
        token = token_in(mailer.outbox[-1].text)
        before = await links.get_sign_up(client, sign_up.id)
        writes = len(storage.batches)

        renderer.broken = True
        caplog.set_level(logging.DEBUG, logger="magiclink")
        with pytest.raises(MailDeliveryError) as raised:
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
        await links.mail_sent()
        assert raised.value.permanent  # asking again cannot help until the template is fixed
        assert len(storage.batches) == writes  # no link, no verification: nothing at all
        assert await links.get_sign_up(client, sign_up.id) == before
        assert len(mailer.outbox) == 1

        renderer.broken = False
        result = await links.verify_link(token, client)
        assert result.session_token is not None  # the link sent before still signs up
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info is not None, caplog.text
    assert "UndefinedError" in caplog.text and "lnk_url" in caplog.text
    assert not TOKEN_IN_TEXT.search(caplog.text)


class CountingRenderer(EmailRenderer):
    """The library's templates, counting the emails it rendered (by recipient)."""

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[str] = []

    def render(self, email: LinkEmail | NoticeEmail) -> EmailMessage:
        self.rendered.append(email.to)
        return super().render(email)


async def test_a_request_its_budget_refuses_renders_no_email() -> None:
    """The budgets refuse before the email is rendered: a flood of refused requests costs no
    template work."""
    renderer = CountingRenderer()
    links = MagicLinks(
        Settings(
            secret=SECRET,
            base_url="https://app.example.com",
            links_per_address=1,
            links_per_address_window=timedelta(minutes=10),
        ),
        storage=MemoryStorage(),
        mailer=MemoryMailer(),
        clock=FakeClock(),
        emails=renderer,
    )
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    for _ in range(3):
        with pytest.raises(RateLimitedError):
            await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert renderer.rendered == ["ann@example.org"]


async def test_a_notice_that_fails_to_render_leaves_the_change_standing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The change a notice tells of is written before the notice is rendered: a typo in its
    template is the notice undeliverable (an event, the traceback logged once), and the change
    stands, as when the mail server refuses it."""
    renderer = BreakableRenderer(tmp_path)
    world = make_world(emails=renderer)
    undeliverable: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        undeliverable.append(event)

    world.links.on(Event.MAIL_UNDELIVERABLE, record)
    _, token = await signed_up(world, "ann@example.org")
    session = await world.links.require_session(token)
    sent = len(world.mailer.outbox)

    renderer.broken = True
    caplog.set_level(logging.DEBUG, logger="magiclink")
    added = await world.links.add_email_address(session, "work@example.org")
    addresses = await world.links.list_email_addresses(session.user_id)
    assert {a.email for a in addresses} == {"ann@example.org", "work@example.org"}
    assert added.email == "work@example.org"
    assert len(world.mailer.outbox) == sent  # the notice to ann did not go
    assert [(e.email_address, e.reason) for e in undeliverable] == [
        ("ann@example.org", "email_address_added")
    ]
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info is not None, caplog.text


_KINDS = st.sampled_from(list(AttemptKind))
_SHOWN = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


@st.composite
def _emails(draw: st.DrawFn) -> LinkEmail | NoticeEmail:
    """Any email the library sends: a link email (link or code or both, with or without an
    account) or a notice, its shown fields holding markup and odd characters."""
    app_name = draw(_SHOWN)
    when = datetime(2026, 12, 3, 9, draw(st.integers(0, 59)), tzinfo=UTC)
    if draw(st.booleans()):
        return NoticeEmail(
            kind=draw(st.sampled_from(sorted(NOTICE_TEMPLATES))),
            to="ann@example.org",
            app_name=app_name,
            base_url="https://app.example.com",
            email_address=draw(_SHOWN),
            device=draw(_SHOWN),
            ip_address="203.0.113.9",
            requested_at=when,
        )
    code = draw(st.none() | st.from_regex(r"\A[0-9]{6}\Z"))
    link = draw(st.none() | st.just("https://app.example.com/auth/v1/verify?token=x&a=<b>"))
    return LinkEmail(
        kind=draw(_KINDS),
        to="ann@example.org",
        app_name=app_name,
        base_url="https://app.example.com",
        link_url=link if link is not None or code is not None else "https://x.example/",
        valid_for=timedelta(seconds=draw(st.integers(1, 3 * 86_400))),
        device=draw(_SHOWN),
        ip_address=draw(st.sampled_from(["", "203.0.113.9"])),
        requested_at=when,
        has_account=draw(st.booleans()),
        code=code,
        sign_up_url="https://app.example.com/auth/sign-up",
    )


def _as_jinja_renders_it(
    renderer: EmailRenderer, email: LinkEmail | NoticeEmail
) -> tuple[str, ...]:
    """The email's parts as jinja2's own ``Template.render`` gives them: the reference the
    renderer's single-context rendering must equal."""
    values = {"email": email, "app_name": email.app_name}
    text_template = renderer._text_env.get_template(f"{email.template}.txt")
    subject = "".join(text_template.blocks["subject"](text_template.new_context(values)))
    html = renderer._html_env.get_template(f"{email.template}.html").render(values)
    return " ".join(subject.split()), text_template.render(values), html


_RENDERER = EmailRenderer()


@settings(max_examples=150, deadline=None)
@given(email=_emails())
def test_every_email_renders_as_jinja_renders_its_templates(email: LinkEmail | NoticeEmail) -> None:
    message = _RENDERER.render(email)
    assert (message.subject, message.text, message.html) == _as_jinja_renders_it(_RENDERER, email)
    assert message.subject  # every shipped template has one


def _sign_in_email(app_name: str = "Acme") -> LinkEmail:
    return LinkEmail(
        kind=AttemptKind.SIGN_IN,
        to="ann@example.org",
        app_name=app_name,
        base_url="https://app.example.com",
        link_url="https://app.example.com/auth/v1/verify?token=x",
        valid_for=timedelta(minutes=10),
        device="Firefox on Linux",
        ip_address="203.0.113.9",
        requested_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
    )


def test_a_subject_your_own_base_template_gives_is_the_subject(tmp_path: Path) -> None:
    """A template that extends a base of your own and overrides only the body gets the base's
    subject, as jinja2's inheritance gives every other block (it was sent with none)."""
    (tmp_path / "my_base.txt").write_text(
        "{% block subject %}Your {{ app_name }} link{% endblock %}{% block body %}{% endblock %}"
    )
    (tmp_path / "sign_in.txt").write_text(
        '{% extends "my_base.txt" %}{% block body %}Open {{ email.link_url }}{% endblock %}'
    )
    message = EmailRenderer(tmp_path).render(_sign_in_email())
    assert message.subject == "Your Acme link"
    assert message.text == "Your Acme linkOpen https://app.example.com/auth/v1/verify?token=x"


def test_your_templates_have_jinja2s_globals(tmp_path: Path) -> None:
    (tmp_path / "sign_in.txt").write_text(
        '{% extends "_base.txt" %}{% block subject %}Hi{% endblock %}{% block body %}'
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }} {{ dict(a=1)|length }}{% endblock %}"
    )
    assert EmailRenderer(tmp_path).render(_sign_in_email()).text == "3 1\n"


def test_a_template_error_is_traced_to_the_template_line(tmp_path: Path) -> None:
    (tmp_path / "sign_in.txt").write_text(
        '{% extends "_base.txt" %}{% block subject %}Hi{% endblock %}{% block body %}\n'
        "Hello\n{{ email.lnk_url }}{% endblock %}"
    )
    with pytest.raises(jinja2.UndefinedError) as raised:
        EmailRenderer(tmp_path).render(_sign_in_email())
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(raised.value.__traceback__)]
    assert (str(tmp_path / "sign_in.txt"), 3) in frames, frames


async def test_a_text_template_without_a_subject_is_refused_before_anything_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An email with no subject is a template mistake (a ``subject`` block left out, or one
    that renders blank): refused like a typo, before anything is written, never sent blank."""
    (tmp_path / "sign_up.txt").write_text(
        '{% extends "_base.txt" %}{% block body %}Join: {{ email.link_url }}{% endblock %}'
    )
    (tmp_path / "sign_in.txt").write_text(
        '{% extends "_base.txt" %}{% block subject %} {{ "" }}\n{% endblock %}'
        "{% block body %}{{ email.link_url }}{% endblock %}"
    )
    with pytest.raises(ValueError, match=r"sign_in\.txt gives no subject"):
        EmailRenderer(tmp_path).render(_sign_in_email())
    storage, mailer = WritesSeen(), MemoryMailer()
    links = MagicLinks(
        Settings(secret=SECRET, base_url="https://app.example.com"),
        storage=storage,
        mailer=mailer,
        emails=EmailRenderer(tmp_path),
    )
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    writes = len(storage.batches)
    caplog.set_level(logging.DEBUG, logger="magiclink")
    with pytest.raises(MailDeliveryError) as raised:
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    assert raised.value.permanent
    assert len(storage.batches) == writes and mailer.outbox == []
    assert "sign_up.txt gives no subject" in caplog.text
