"""An attack leaves no trace when only successes are reported. Every refusal is an event the
app's hooks receive (``link_refused``, ``email_code_refused``, ``rate_limited``,
``mail_undeliverable``, ``sign_in_vetoed``, ``sign_up_vetoed``, ``reverification_required``),
with its reason and the client IP, and a warning in the log that never holds a token, an email
code or a confirmation code."""

from __future__ import annotations

import logging

import pytest

from magiclink_core import (
    AuthEvent,
    ConfirmationCodeError,
    EmailCodeError,
    EmailMessage,
    Event,
    MagicLinkError,
    MagicLinks,
    MailDeliveryError,
    NotAllowedError,
    RateLimitedError,
    RequestInfo,
    Settings,
)
from magiclink_core.domain.events import REFUSALS
from magiclink_core.storage import MemoryStorage
from magiclink_core.testing import FakeClock
from tests.support import SECRET

from ..core._support import World, make_world, signed_up

pytestmark = pytest.mark.anyio
FROM = RequestInfo(ip_address="203.0.113.7")


def recorded(world: World) -> list[AuthEvent]:
    seen: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        seen.append(event)

    for kind in REFUSALS:
        world.links.on(kind, record)
    return seen


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_refused_links_and_codes_are_events_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="magiclink")
    world = make_world()
    seen = recorded(world)
    await signed_up(world)
    owner = await world.client()
    sign_in = await world.links.create_sign_in(owner, "ann@example.org")
    prepared = await world.links.prepare_first_factor(owner, sign_in.id, redirect_url="/")
    token = world.last_link("ann@example.org")
    message = world.mailer.last_to("ann@example.org")
    assert message is not None and message.email_code is not None and prepared.verification
    confirmation = prepared.verification.confirmation_code
    wrong_email_code = "0" * 6 if message.email_code != "0" * 6 else "1" * 6

    stranger = await world.client()
    with pytest.raises(ConfirmationCodeError):
        await world.links.verify_link(token, stranger, confirmation_code="000000", request=FROM)
    with pytest.raises(EmailCodeError):
        await world.links.attempt_first_factor(
            owner, sign_in.id, code=wrong_email_code, request=FROM
        )
    world.clock.advance(minutes=11)
    with pytest.raises(MagicLinkError):
        await world.links.verify_link(token, owner, request=FROM)

    assert [(e.event, e.reason, e.ip_address) for e in seen] == [
        (Event.LINK_REFUSED, "confirmation_code_incorrect", "203.0.113.7"),
        (Event.EMAIL_CODE_REFUSED, "email_code_incorrect", "203.0.113.7"),
        (Event.LINK_REFUSED, "expired", "203.0.113.7"),
    ]
    assert seen[1].attempt_id == sign_in.id and seen[1].email_address == "ann@example.org"
    logged = warnings_of(caplog)
    assert len(logged) == 3 and logged[0].startswith("link_refused reason=")
    for line in logged:
        for secret in (token, token[len("mll1_") :], message.email_code, wrong_email_code):
            assert secret not in line
        assert confirmation not in line and "ann@example.org" not in line


async def test_a_limit_hit_is_an_event() -> None:
    world = make_world(attempts_per_ip=1)
    seen = recorded(world)
    client = await world.client()
    await world.links.create_sign_in(client, "ann@example.org", request=FROM)
    with pytest.raises(RateLimitedError):
        await world.links.create_sign_in(client, "ann@example.org", request=FROM)
    (event,) = seen
    assert (event.event, event.reason, event.ip_address) == (
        Event.RATE_LIMITED,
        "attempts_per_ip",
        "203.0.113.7",
    )


@pytest.mark.parametrize("refuse", ["return False", "raise"])
async def test_vetoed_sign_ins_and_sign_ups_are_events(refuse: str) -> None:
    world = make_world()
    seen = recorded(world)

    async def veto(email: str) -> bool:
        if refuse == "raise":
            raise NotAllowedError()
        return not email.endswith("@blocked.example")

    world.links.before_sign_in(veto)
    world.links.before_sign_up(veto)
    client = await world.client()
    with pytest.raises(NotAllowedError):
        await world.links.create_sign_in(client, "eve@blocked.example", request=FROM)
    with pytest.raises(NotAllowedError):
        await world.links.create_sign_up(client, "eve@blocked.example", request=FROM)
    assert [(e.event, e.email_address, e.ip_address) for e in seen] == [
        (Event.SIGN_IN_VETOED, "eve@blocked.example", "203.0.113.7"),
        (Event.SIGN_UP_VETOED, "eve@blocked.example", "203.0.113.7"),
    ]


class RefusingMailer:
    async def send(self, message: EmailMessage) -> None:
        raise MailDeliveryError("550 no such mailbox", permanent=True)


async def test_an_email_that_cannot_be_sent_is_an_event() -> None:
    links = MagicLinks(
        Settings(secret=SECRET, base_url="https://app.example.com"),
        storage=MemoryStorage(),
        mailer=RefusingMailer(),
        clock=FakeClock(),
    )
    seen: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        seen.append(event)

    links.on(Event.MAIL_UNDELIVERABLE, record)
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    with pytest.raises(MailDeliveryError):
        await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/", request=FROM)
    (event,) = seen
    assert (event.reason, event.attempt_id, event.email_address, event.ip_address) == (
        "sign_up",
        sign_up.id,
        "ann@example.org",
        "203.0.113.7",
    )


def test_every_refusal_is_an_event_kind_apps_can_subscribe_to() -> None:
    assert {e.value for e in REFUSALS} == {
        "link_refused",
        "email_code_refused",
        "rate_limited",
        "mail_undeliverable",
        "sign_in_vetoed",
        "sign_up_vetoed",
        "reverification_required",
    }
    world = make_world()
    for kind in REFUSALS:

        @world.links.on(kind.value)
        async def hook(event: AuthEvent) -> None:
            return None
