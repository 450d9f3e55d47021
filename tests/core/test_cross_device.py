"""Clicks from another client under each cross-device policy; the session goes to the starter."""

import pytest

from magiclink_core import (
    ConfirmationCodeError,
    InvalidStateError,
    MagicLinkError,
    NotFoundError,
    SignInStatus,
    VerificationStatus,
    verified_from_the_same_client,
)

from ._support import make_world, signed_up

pytestmark = pytest.mark.anyio


async def start_sign_in(world, email="ann@example.org"):  # type: ignore[no-untyped-def]
    starter = await world.client()
    sign_in = await world.links.create_sign_in(starter, email)
    sign_in = await world.links.prepare_first_factor(starter, sign_in.id, redirect_url="/done")
    return starter, sign_in, world.last_link(email)


async def test_allow_completes_for_the_starting_client() -> None:
    world = make_world(cross_device="allow")
    await signed_up(world)
    starter, sign_in, token = await start_sign_in(world)
    phone = await world.client()
    result = await world.links.verify_link(token, phone)
    assert not result.verified_from_the_same_client and result.session_token is None
    assert result.session is not None and result.session.client_id == starter.id
    done = await world.links.get_sign_in(starter, sign_in.id)
    assert done.status is SignInStatus.COMPLETE and not verified_from_the_same_client(done)
    assert done.verification is not None and done.verification.verified_at_client == phone.id
    # the starter collects its session: a token is issued to it, and only to it
    with pytest.raises(NotFoundError):
        await world.links.activate_session(phone, result.session.id)
    session, token_for_starter = await world.links.activate_session(starter, result.session.id)
    assert (await world.links.authenticate(token_for_starter)) is not None
    assert session.client_id == starter.id


async def test_deny_refuses_another_client_and_completes_nothing() -> None:
    world = make_world(cross_device="deny")
    await signed_up(world)
    starter, sign_in, token = await start_sign_in(world)
    phone = await world.client()
    with pytest.raises(MagicLinkError) as caught:
        await world.links.verify_link(token, phone)
    assert caught.value.code == "client_mismatch"
    seen = await world.links.get_sign_in(starter, sign_in.id)
    assert seen.status is SignInStatus.NEEDS_FIRST_FACTOR and seen.created_session_id is None
    assert seen.verification is not None
    assert seen.verification.status is VerificationStatus.CLIENT_MISMATCH
    # not even the starter can use that link afterwards
    with pytest.raises(MagicLinkError):
        await world.links.verify_link(token, starter)


async def test_confirm_needs_the_code_only_the_starter_sees() -> None:
    world = make_world()  # confirm is the default
    await signed_up(world)
    starter, sign_in, token = await start_sign_in(world)
    phone = await world.client()
    preview = await world.links.inspect_link(token, phone)
    assert preview.needs_confirmation and not preview.same_client
    assert "confirmation_code" not in repr(preview)
    with pytest.raises(InvalidStateError):
        await world.links.verify_link(token, phone)
    code = sign_in.verification.confirmation_code
    assert code.isdigit() and len(code) == 6
    # the code is not in the email either
    email = world.mailer.last_to("ann@example.org")
    assert email is not None and code not in email.text.replace(token, "")
    result = await world.links.verify_link(token, phone, confirmation_code=code)
    assert result.session is not None and result.session.client_id == starter.id
    assert result.session_token is None
    done = await world.links.get_sign_in(starter, sign_in.id)
    assert done.status is SignInStatus.COMPLETE


async def test_inspecting_changes_nothing_as_a_mail_scanner_would() -> None:
    world = make_world()
    await signed_up(world)
    starter, sign_in, token = await start_sign_in(world)
    for _ in range(5):
        await world.links.inspect_link(token, None)
    seen = await world.links.get_sign_in(starter, sign_in.id)
    assert seen.version == sign_in.version
    await world.links.verify_link(token, starter)


async def test_a_few_wrong_codes_make_the_link_fail() -> None:
    world = make_world(max_confirmation_code_attempts=3)
    await signed_up(world)
    starter, sign_in, token = await start_sign_in(world)
    attacker = await world.client()
    code = sign_in.verification.confirmation_code
    wrong = "000000" if code != "000000" else "111111"
    for left in (2, 1):
        with pytest.raises(ConfirmationCodeError) as caught:
            await world.links.verify_link(token, attacker, confirmation_code=wrong)
        assert caught.value.attempts_left == left
    with pytest.raises(MagicLinkError) as failed:
        await world.links.verify_link(token, attacker, confirmation_code=wrong)
    assert failed.value.code == "failed"
    with pytest.raises(MagicLinkError):
        await world.links.verify_link(token, attacker, confirmation_code=code)
    seen = await world.links.get_sign_in(starter, sign_in.id)
    assert seen.status is SignInStatus.NEEDS_FIRST_FACTOR
    assert seen.verification is not None and seen.verification.status is VerificationStatus.FAILED


@pytest.mark.parametrize("limit", [1, 3, 5])
async def test_the_preview_tells_the_code_tries_the_link_has_left(limit: int) -> None:
    """What the confirmation page says after a wrong code is read from the link."""
    world = make_world(max_confirmation_code_attempts=limit)
    await signed_up(world)
    starter, sign_in, token = await start_sign_in(world)
    code = sign_in.verification.confirmation_code
    wrong = "000000" if code != "000000" else "111111"
    phone = await world.client()
    for typed in range(limit - 1):
        preview = await world.links.open_link(token, phone)
        assert preview.code_tries_left == limit - typed
        with pytest.raises(ConfirmationCodeError) as caught:
            await world.links.verify_link(token, phone, confirmation_code=wrong)
        assert caught.value.attempts_left == limit - typed - 1  # the page and the error agree
    assert (await world.links.inspect_link(token, phone)).code_tries_left == 1
    # nothing to count where no code is asked: the browser that asked, policy allow
    assert (await world.links.inspect_link(token, starter)).code_tries_left is None
    allow = make_world(cross_device="allow")
    await signed_up(allow)
    _, _, other = await start_sign_in(allow)
    assert (await allow.links.inspect_link(other, await allow.client())).code_tries_left is None


async def test_the_starter_itself_needs_no_code() -> None:
    world = make_world()
    await signed_up(world)
    starter, _, token = await start_sign_in(world)
    preview = await world.links.inspect_link(token, starter)
    assert preview.same_client and not preview.needs_confirmation
    result = await world.links.verify_link(token, starter)
    assert result.verified_from_the_same_client and result.session_token is not None


async def test_other_clients_never_see_the_attempt_or_its_code() -> None:
    world = make_world()
    await signed_up(world)
    _, sign_in, _ = await start_sign_in(world)
    phone = await world.client()
    with pytest.raises(NotFoundError):
        await world.links.get_sign_in(phone, sign_in.id)
