"""The code in the email: one more way to complete the same verification as the link."""

from datetime import timedelta
from typing import Any

import anyio
import pytest

from magiclink_core import (
    Client,
    EmailCodeError,
    InvalidRequestError,
    MagicLinkExpiredError,
    MagicLinkFailedError,
    NotFoundError,
    RateLimitedError,
    RequestInfo,
    SignIn,
    SignInStatus,
    SignUpStatus,
    VerificationStatus,
)

from ._support import World, make_world, signed_up

pytestmark = pytest.mark.anyio


def code_to(world: World, email: str) -> str:
    message = world.mailer.last_to(email)
    assert message is not None and message.email_code is not None
    assert message.email_code in message.text and message.email_code in message.html
    return message.email_code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


async def started_sign_in(world: World, email: str = "ann@example.org", **prepare: object):
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, email)
    await world.links.prepare_first_factor(
        client,
        sign_in.id,
        redirect_url="/in",
        **prepare,  # type: ignore[arg-type]
    )
    return client, sign_in


async def ann_signing_in(**settings: Any) -> tuple[World, Client, SignIn]:
    """A world (with ``settings``) where Ann has an account and a new client has asked to sign
    in as her: the email is sent."""
    world = make_world(**settings)
    await signed_up(world)
    client, sign_in = await started_sign_in(world)
    return world, client, sign_in


async def test_the_email_carries_a_link_and_a_six_digit_code_saying_where_each_is_used() -> None:
    world = make_world()
    await signed_up(world)
    await started_sign_in(world)
    message = world.mailer.last_to("ann@example.org")
    assert message is not None and message.email_code is not None
    assert len(message.email_code) == 6 and message.email_code.isdigit()
    assert "Open this link to sign in" in message.text
    assert "type this code on the page that asked for it, on the device where you asked" in (
        message.text
    )
    assert "different code, shown on the device where you asked" in message.text


async def test_the_code_completes_the_sign_in_for_the_client_that_asked_and_kills_the_link() -> (
    None
):
    world, client, sign_in = await ann_signing_in()
    link = world.last_link("ann@example.org")
    result = await world.links.attempt_first_factor(
        client, sign_in.id, code=code_to(world, "ann@example.org")
    )
    assert result.attempt.status is SignInStatus.COMPLETE
    assert result.session_token is not None
    assert await world.links.authenticate(result.session_token) is not None
    assert result.verification.verified_with == "email_code"
    again = await world.links.verify_link(link, client)  # the link finds it done: no new session
    assert again.repeated and again.session is not None and result.session is not None
    assert again.session.id == result.session.id
    with pytest.raises(MagicLinkFailedError):  # for anyone else the link is used up
        await world.links.verify_link(link, await world.client())


async def test_the_link_kills_the_code() -> None:
    world, client, sign_in = await ann_signing_in()
    code = code_to(world, "ann@example.org")
    await world.links.verify_link(world.last_link("ann@example.org"), client)
    with pytest.raises(MagicLinkFailedError):
        await world.links.attempt_first_factor(client, sign_in.id, code=code)


async def test_a_newer_email_invalidates_the_older_link_and_code_together() -> None:
    world, client, sign_in = await ann_signing_in()
    old_code, old_link = code_to(world, "ann@example.org"), world.last_link("ann@example.org")
    await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/in")
    new_code = code_to(world, "ann@example.org")
    if new_code != old_code:  # one in a million they are equal: the digest still differs
        with pytest.raises(EmailCodeError):
            await world.links.attempt_first_factor(client, sign_in.id, code=old_code)
    with pytest.raises(MagicLinkFailedError):
        await world.links.verify_link(old_link, client)
    done = await world.links.attempt_first_factor(client, sign_in.id, code=new_code)
    assert done.attempt.status is SignInStatus.COMPLETE


async def test_only_the_client_that_asked_may_use_its_code() -> None:
    world, client, sign_in = await ann_signing_in()
    stranger = await world.client()
    with pytest.raises(NotFoundError):
        await world.links.attempt_first_factor(
            stranger, sign_in.id, code=code_to(world, "ann@example.org")
        )
    assert (await world.links.get_sign_in(client, sign_in.id)).status is (
        SignInStatus.NEEDS_FIRST_FACTOR
    )


async def test_five_wrong_codes_fail_the_verification_and_a_new_email_is_needed() -> None:
    world, client, sign_in = await ann_signing_in()
    code = code_to(world, "ann@example.org")
    for left in (4, 3, 2, 1):
        with pytest.raises(EmailCodeError) as caught:
            await world.links.attempt_first_factor(client, sign_in.id, code=wrong(code))
        assert caught.value.attempts_left == left
    with pytest.raises(MagicLinkFailedError):
        await world.links.attempt_first_factor(client, sign_in.id, code=wrong(code))
    failed = await world.links.get_sign_in(client, sign_in.id)
    assert failed.verification is not None
    assert failed.verification.status is VerificationStatus.FAILED
    with pytest.raises(MagicLinkFailedError):  # the right code no longer helps, nor the link
        await world.links.attempt_first_factor(client, sign_in.id, code=code)
    with pytest.raises(MagicLinkFailedError):
        await world.links.verify_link(world.last_link("ann@example.org"), client)
    await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/in")
    done = await world.links.attempt_first_factor(
        client, sign_in.id, code=code_to(world, "ann@example.org")
    )
    assert done.session_token is not None


async def test_a_new_email_does_not_reset_the_addresss_hourly_budget() -> None:
    world, client, sign_in = await ann_signing_in(
        max_email_code_attempts=100, email_code_failures_per_address=7
    )
    for _ in range(4):
        with pytest.raises(EmailCodeError):
            await world.links.attempt_first_factor(client, sign_in.id, code="000000x")
    client, sign_in = await started_sign_in(world)  # another device, another email
    for _ in range(3):
        with pytest.raises(EmailCodeError):
            await world.links.attempt_first_factor(client, sign_in.id, code="000000x")
    right = code_to(world, "ann@example.org")
    with pytest.raises(RateLimitedError) as caught:  # spent: not even the right code is compared
        await world.links.attempt_first_factor(client, sign_in.id, code=right)
    assert timedelta(0) < caught.value.retry_after <= timedelta(hours=1)
    world.clock.advance(hours=1)
    client, sign_in = await started_sign_in(world)
    done = await world.links.attempt_first_factor(
        client, sign_in.id, code=code_to(world, "ann@example.org")
    )
    assert done.session_token is not None


async def test_right_codes_do_not_spend_the_addresss_budget_of_wrong_ones() -> None:
    world = make_world(email_code_failures_per_address=2)
    await signed_up(world)
    for _ in range(2):  # two sign-ins by the right code: no wrong code yet
        client, sign_in = await started_sign_in(world)
        await world.links.attempt_first_factor(
            client, sign_in.id, code=code_to(world, "ann@example.org")
        )
    client, sign_in = await started_sign_in(world)
    with pytest.raises(EmailCodeError):  # the first wrong code of the hour: not rate limited
        await world.links.attempt_first_factor(client, sign_in.id, code="000000x")


async def test_right_codes_spend_no_budget() -> None:
    world = make_world(email_code_failures_per_address=2, email_code_failures_per_ip=2)
    await signed_up(world)
    for _ in range(4):
        client, sign_in = await started_sign_in(world)
        done = await world.links.attempt_first_factor(
            client,
            sign_in.id,
            code=code_to(world, "ann@example.org"),
            request=RequestInfo(ip_address="203.0.113.9"),
        )
        assert done.session_token is not None


async def test_wrong_codes_are_counted_per_ip_address_across_addresses() -> None:
    world = make_world(email_code_failures_per_ip=3)
    await signed_up(world, "ann@example.org")
    await signed_up(world, "bob@example.org")
    attacker = RequestInfo(ip_address="203.0.113.9")
    tries = [
        await started_sign_in(world, email) for email in ("ann@example.org", "bob@example.org")
    ]
    for client, sign_in in (tries[0], tries[1], tries[0]):
        with pytest.raises(EmailCodeError):
            await world.links.attempt_first_factor(client, sign_in.id, code="1", request=attacker)
    client, sign_in = tries[1]
    with pytest.raises(RateLimitedError):
        await world.links.attempt_first_factor(
            client, sign_in.id, code=code_to(world, "bob@example.org"), request=attacker
        )
    elsewhere = RequestInfo(ip_address="198.51.100.7")
    done = await world.links.attempt_first_factor(
        client, sign_in.id, code=code_to(world, "bob@example.org"), request=elsewhere
    )
    assert done.session_token is not None


async def test_only_a_digest_of_the_code_is_stored() -> None:
    world, _, sign_in = await ann_signing_in()
    code = code_to(world, "ann@example.org")
    stored = await world.storage.get(type(sign_in), sign_in.id)
    assert stored is not None and stored.verification is not None
    assert stored.verification.email_code_digest is not None
    assert code not in stored.model_dump_json()


async def test_sign_ups_and_email_addresses_verify_by_code_too() -> None:
    world = make_world()
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    await world.links.prepare_sign_up_verification(client, sign_up.id, strategy="email_code")
    message = world.mailer.last_to("ann@example.org")
    assert message is not None and "token=" not in message.text  # a code only: no link
    done = await world.links.attempt_sign_up_verification(
        client, sign_up.id, code=code_to(world, "ann@example.org")
    )
    assert done.attempt.status is SignUpStatus.COMPLETE and done.session_token is not None
    session = await world.links.require_session(done.session_token)
    added = await world.links.add_email_address(session, "work@example.org")
    await world.links.prepare_email_verification(session, added.id, redirect_url="/me")
    verified = await world.links.attempt_email_verification(
        session, added.id, code=code_to(world, "work@example.org")
    )
    assert verified.attempt.verified and verified.session_token is None


async def test_an_address_with_no_account_gets_no_code_and_guesses_fail_like_any_others() -> None:
    world = make_world()
    client, sign_in = await started_sign_in(world, "nobody@example.org")
    message = world.mailer.last_to("nobody@example.org")
    assert message is not None and message.email_code is None and "token=" not in message.text
    with pytest.raises(EmailCodeError) as caught:
        await world.links.attempt_first_factor(client, sign_in.id, code="123456")
    assert caught.value.attempts_left == 4


async def test_the_app_chooses_links_only_or_codes_only() -> None:
    links_only = make_world(email_verification="link")
    await signed_up(links_only)
    client, sign_in = await started_sign_in(links_only)
    message = links_only.mailer.last_to("ann@example.org")
    assert message is not None and message.email_code is None and "token=" in message.text
    assert [f.strategy for f in links_only.links.first_factors(sign_in)] == ["email_link"]
    with pytest.raises(InvalidRequestError):
        await links_only.links.prepare_first_factor(client, sign_in.id, strategy="email_code")

    codes_only = make_world(email_verification="code")
    await _signed_up_by_code(codes_only)
    client, sign_in = await started_sign_in(codes_only)
    message = codes_only.mailer.last_to("ann@example.org")
    assert message is not None and message.email_code is not None and "token=" not in message.text
    assert [f.strategy for f in codes_only.links.first_factors(sign_in)] == ["email_code"]


async def _signed_up_by_code(world: World) -> None:
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "ann@example.org")
    await world.links.prepare_sign_up_verification(client, sign_up.id)
    await world.links.attempt_sign_up_verification(
        client, sign_up.id, code=code_to(world, "ann@example.org")
    )


async def test_the_code_length_is_a_setting() -> None:
    world = make_world(email_code_digits=8)
    await signed_up(world)
    await started_sign_in(world)
    assert len(code_to(world, "ann@example.org")) == 8


async def test_an_expired_code_says_expired() -> None:
    world, client, sign_in = await ann_signing_in()
    code = code_to(world, "ann@example.org")
    world.clock.advance(world.links.settings.link_ttl)
    with pytest.raises(MagicLinkExpiredError):
        await world.links.attempt_first_factor(client, sign_in.id, code=code)


async def test_racing_codes_and_clicks_complete_once() -> None:
    world, client, sign_in = await ann_signing_in()
    code, link = code_to(world, "ann@example.org"), world.last_link("ann@example.org")
    wins: list[str] = []

    async def by_code() -> None:
        try:
            await world.links.attempt_first_factor(client, sign_in.id, code=code)
            wins.append("code")
        except MagicLinkFailedError:
            pass

    async def by_link() -> None:
        try:
            if not (await world.links.verify_link(link, client)).repeated:
                wins.append("link")
        except MagicLinkFailedError:
            pass

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(by_code)
            group.start_soon(by_link)
    assert len(wins) == 1
    sessions = await world.links.list_sessions(
        (await world.links.get_sign_in(client, sign_in.id)).user_id or ""
    )
    assert len(sessions) == 2  # the sign-up's and this one
