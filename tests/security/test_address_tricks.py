"""Address tricks that sent other people's links to attackers in peer libraries (Auth.js
advisories): lists, quoting, display names, look-alike characters. Each is refused, or reaches
exactly the one canonical mailbox."""

import pytest

from magiclink_core import InvalidEmailError
from magiclink_core.domain.emails import envelope_address, normalise_email

from ..core._support import make_world

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "trick",
    [
        "victim@example.org, attacker@evil.example",
        "victim@example.org;attacker@evil.example",
        '"attacker@evil.example"@example.org',
        "Victim <attacker@evil.example>",
        "victim@example.org <attacker@evil.example>",
        "victim\uff20example.org",  # full-width at-sign
        "\uff56ictim@example.org",  # full-width letter: NFKC makes it "victim"
        "\ufb01le@example.org",  # a ligature: NFKC makes it "file"
        "a" * 65 + "@example.org",  # a local part over 64 octets
        "\u0130" * 32 + "@example.org",  # 64 octets as typed, 96 lower-cased ("i" + U+0307)
        "victim@example.org\nBcc: attacker@evil.example",
    ],
)
def test_a_trick_address_is_refused(trick: str) -> None:
    with pytest.raises(InvalidEmailError):
        normalise_email(trick)


def test_spellings_of_one_mailbox_are_one_address() -> None:
    assert normalise_email("  Ann@Example.ORG ") == "ann@example.org"
    assert normalise_email("ann@bücher.example") == normalise_email("ann@xn--bcher-kva.example")


def test_an_idn_domain_is_shown_as_typed_and_sent_to_its_ascii_form() -> None:
    canonical = normalise_email("ann@Bücher.example")
    assert canonical == "ann@bücher.example"
    assert envelope_address(canonical) == "ann@xn--bcher-kva.example"
    assert envelope_address("jürgen@example.com") == "jürgen@example.com"  # SMTPUTF8 either way


async def test_the_envelope_recipient_is_the_stored_canonical_address() -> None:
    world = make_world()
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "  Ann@Bücher.EXAMPLE ")
    assert sign_up.email_address == "ann@bücher.example"
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    (message,) = world.mailer.outbox
    assert message.to == "ann@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "trick", ["victim@example.org, attacker@evil.example", "\u0130" * 32 + "@example.org"]
)
async def test_a_trick_address_creates_nothing_and_sends_nothing(trick: str) -> None:
    world = make_world()
    client = await world.client()
    with pytest.raises(InvalidEmailError):
        await world.links.create_sign_in(client, trick)
    with pytest.raises(InvalidEmailError):
        await world.links.create_sign_up(client, trick)
    assert world.mailer.outbox == []
    state = await world.links.client_state(client)
    assert state.sign_in is None and state.sign_up is None
