"""Sign-up, sign-in and email verification through the service, as the issue lists them."""

from datetime import timedelta

import pytest

from magiclink_core import (
    EmailAddress,
    IdentifierExistsError,
    IdentifierNotFoundError,
    InvalidStateError,
    Link,
    LinkStillWorksError,
    MagicLinkError,
    NotFoundError,
    Session,
    SignInStatus,
    SignUpStatus,
    User,
    VerificationStatus,
    verified_from_the_same_client,
)

from ._support import World, make_world, signed_up

pytestmark = pytest.mark.anyio


async def test_sign_up_by_link_creates_a_user_and_a_session(world: World) -> None:
    client = await world.client()
    sign_up = await world.links.create_sign_up(client, "Ann@Example.org")
    assert sign_up.status is SignUpStatus.MISSING_REQUIREMENTS and sign_up.verification is None
    prepared = await world.links.prepare_sign_up_verification(
        client, sign_up.id, redirect_url="/welcome"
    )
    assert prepared.verification is not None
    assert prepared.verification.status is VerificationStatus.UNVERIFIED
    assert prepared.verification.redirect_url == "https://app.example.com/welcome"

    result = await world.links.verify_link(world.last_link("ann@example.org"), client)

    done = await world.links.get_sign_up(client, sign_up.id)
    assert done.status is SignUpStatus.COMPLETE
    assert done.verification is not None and done.verification.status is VerificationStatus.VERIFIED
    assert done.created_user_id and done.created_session_id
    assert verified_from_the_same_client(done) and result.verified_from_the_same_client
    user = await world.storage.get(User, done.created_user_id)
    assert user is not None and user.primary_email_address_id
    address = await world.storage.get(EmailAddress, user.primary_email_address_id)
    assert address is not None and address.verified and address.email == "ann@example.org"
    assert result.session_token is not None
    session = await world.links.authenticate(result.session_token)
    assert session is not None and session.id == done.created_session_id
    assert session.user_id == user.id and session.client_id == client.id


async def test_sign_in_by_link_completes_with_a_new_session(world: World) -> None:
    _, first_token = await signed_up(world)
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, "ANN@example.org")
    assert sign_in.status is SignInStatus.NEEDS_FIRST_FACTOR
    (factor, code_factor) = world.links.first_factors(sign_in)
    assert factor.strategy == "email_link" and factor.safe_identifier == "ann@example.org"
    assert code_factor.strategy == "email_code"
    await world.links.prepare_first_factor(
        client, sign_in.id, email_address_id=factor.email_address_id, redirect_url="/in"
    )
    result = await world.links.verify_link(world.last_link("ann@example.org"), client)
    done = await world.links.get_sign_in(client, sign_in.id)
    assert done.status is SignInStatus.COMPLETE and done.created_session_id == result.session.id  # type: ignore[union-attr]
    assert result.session_token is not None and result.session_token != first_token
    new = await world.links.authenticate(result.session_token)
    old = await world.links.authenticate(first_token)
    assert new is not None and old is not None and new.user_id == old.user_id and new.id != old.id


async def test_email_verification_adds_a_verified_address(world: World) -> None:
    client, token = await signed_up(world)
    session = await world.links.require_session(token)
    added = await world.links.add_email_address(session, "work@example.org")
    assert not added.verified
    await world.links.prepare_email_verification(session, added.id, redirect_url="/profile")
    email = world.mailer.last_to("work@example.org")
    assert email is not None and email.kind == "verify_email"
    result = await world.links.verify_link(world.last_link("work@example.org"), client)
    assert result.session is None and result.session_token is None
    now_verified = await world.links.get_email_address(session, added.id)
    assert now_verified.verified
    assert now_verified.verification is not None
    assert now_verified.verification.status is VerificationStatus.VERIFIED
    # and it now signs in
    other = await world.client()
    sign_in = await world.links.create_sign_in(other, "work@example.org")
    assert sign_in.user_id == session.user_id


async def test_an_address_verified_by_one_user_cannot_be_claimed_by_another(world: World) -> None:
    await signed_up(world, "ann@example.org")
    bob_client, bob_token = await signed_up(world, "bob@example.org")
    bob = await world.links.require_session(bob_token)
    added = await world.links.add_email_address(bob, "ann@example.org")
    await world.links.prepare_email_verification(bob, added.id, redirect_url="/p")
    with pytest.raises(MagicLinkError) as caught:
        await world.links.verify_link(world.last_link("ann@example.org"), bob_client)
    assert caught.value.code == "failed"
    still = await world.links.get_email_address(bob, added.id)
    assert not still.verified
    assert still.verification is not None and still.verification.status is VerificationStatus.FAILED
    owner = await world.storage.find(EmailAddress, "claimed_email", "ann@example.org")
    assert owner is not None and owner.user_id != bob.user_id


async def test_two_sign_ups_racing_for_one_address_make_one_user() -> None:
    world = make_world(cross_device="allow")
    a, b = await world.client(), await world.client()
    first = await world.links.create_sign_up(a, "race@example.org")
    second = await world.links.create_sign_up(b, "race@example.org")
    await world.links.prepare_sign_up_verification(a, first.id, redirect_url="/")
    link_a = world.last_link("race@example.org")
    await world.links.prepare_sign_up_verification(b, second.id, redirect_url="/")
    link_b = world.last_link("race@example.org")
    result_a = await world.links.verify_link(link_a, a)
    result_b = await world.links.verify_link(link_b, b)
    # the second proves the same mailbox, so it signs in to the account the first created
    assert result_a.session is not None and result_b.session is not None
    assert result_a.session.user_id == result_b.session.user_id
    assert len(await world.storage.list(EmailAddress, "email", "race@example.org")) == 1


async def test_a_newer_link_invalidates_the_older_one(world: World) -> None:
    client, sign_up, older = await world.sent_sign_up()
    await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")
    newer = world.last_link("ann@example.org")
    with pytest.raises(MagicLinkError) as caught:
        await world.links.verify_link(older, client)
    assert caught.value.code == "failed"
    await world.links.verify_link(newer, client)


async def test_a_link_works_once(world: World) -> None:
    client, _, token = await world.sent_sign_up()
    first = await world.links.verify_link(token, client)
    # the same client again (a reload, a lost answer): the same session, nothing completed anew
    again = await world.links.verify_link(token, client)
    assert again.repeated and not first.repeated
    assert again.session is not None and first.session is not None
    assert again.session.id == first.session.id
    with pytest.raises(MagicLinkError) as caught:  # anyone else: used up
        await world.links.verify_link(token, await world.client())
    assert caught.value.code == "failed"
    # never a second session: the same one under a fresh token
    assert again.session_token != first.session_token
    assert len(await world.links.list_sessions(first.session.user_id)) == 1


async def test_links_expire_after_the_configured_time() -> None:
    world = make_world(link_ttl=timedelta(minutes=5))
    client, sign_up, token = await world.sent_sign_up()
    world.clock.advance(minutes=5)
    with pytest.raises(MagicLinkError) as caught:
        await world.links.verify_link(token, client)
    assert caught.value.code == "expired"
    seen = await world.links.get_sign_up(client, sign_up.id)
    assert seen.verification is not None and seen.verification.status is VerificationStatus.EXPIRED
    assert seen.status is SignUpStatus.MISSING_REQUIREMENTS
    # still resendable from the expired link, and the new link works
    await world.links.resend_link(token)
    await world.links.verify_link(world.last_link("ann@example.org"), client)
    assert (await world.links.get_sign_up(client, sign_up.id)).status is SignUpStatus.COMPLETE


async def test_a_resend_renews_only_a_link_whose_time_ran_out(world: World) -> None:
    """The expired-link page's resend: a link that still works (or a newer one that does) is
    refused and nothing changes, so a resend never kills the link in the inbox."""
    client, sign_up, first = await world.sent_sign_up()
    before = await world.links.get_sign_up(client, sign_up.id)
    for live in (first, first):  # the second refusal is the same: the first changed nothing
        with pytest.raises(LinkStillWorksError) as still:
            await world.links.resend_link(live)
        assert still.value.code == "invalid_state" and not still.value.newer
    assert len(world.mailer.outbox) == 1
    assert await world.links.get_sign_up(client, sign_up.id) == before
    world.clock.advance(minutes=11)
    await world.links.resend_link(first)  # expired: renewed
    second = world.last_link("ann@example.org")
    with pytest.raises(LinkStillWorksError) as still:  # superseded; the newer link works
        await world.links.resend_link(first)
    assert still.value.newer
    assert len(world.mailer.outbox) == 2
    world.clock.advance(minutes=11)
    await world.links.resend_link(first)  # superseded, and the newer one expired too
    assert world.last_link("ann@example.org") not in (first, second)
    await world.links.verify_link(world.last_link("ann@example.org"), client)
    with pytest.raises(MagicLinkError):  # used: nothing left to renew
        await world.links.resend_link(second)


@pytest.mark.parametrize(
    "token",
    ["", "nonsense", "mll1_" + "A" * 43, "mls1_" + "A" * 43, "mll1_" + "A" * 42 + "!"],
)
async def test_unknown_or_tampered_links_fail(token: str, world: World) -> None:
    client = await world.client()
    with pytest.raises(MagicLinkError) as caught:
        await world.links.verify_link(token, client)
    assert caught.value.code == "failed"


async def test_a_tampered_real_link_fails(world: World) -> None:
    client, _, token = await world.sent_sign_up()
    flipped = token[:-2] + ("B" if token[-2] != "B" else "C") + token[-1]
    with pytest.raises(MagicLinkError):
        await world.links.verify_link(flipped, client)
    await world.links.verify_link(token, client)


async def test_attempts_belong_to_the_client_that_started_them(world: World) -> None:
    owner, stranger = await world.client(), await world.client()
    sign_in = await world.links.create_sign_in(owner, "ann@example.org")
    sign_up = await world.links.create_sign_up(owner, "bob@example.org")
    for call in (
        world.links.get_sign_in(stranger, sign_in.id),
        world.links.get_sign_up(stranger, sign_up.id),
        world.links.prepare_first_factor(stranger, sign_in.id, redirect_url="/"),
        world.links.prepare_sign_up_verification(stranger, sign_up.id, redirect_url="/"),
        world.links.get_sign_in(owner, "sia_nope"),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert world.mailer.outbox == []


async def test_a_completed_attempt_cannot_be_prepared_again(world: World) -> None:
    client, sign_up, token = await world.sent_sign_up()
    await world.links.verify_link(token, client)
    with pytest.raises(InvalidStateError):
        await world.links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/")


async def test_unknown_address_sign_in_runs_like_a_known_one(world: World) -> None:
    await signed_up(world, "ann@example.org")
    known_client, unknown_client = await world.client(), await world.client()
    known = await world.links.create_sign_in(known_client, "ann@example.org")
    unknown = await world.links.create_sign_in(unknown_client, "nobody@example.org")
    assert unknown.status is known.status
    assert world.links.first_factors(unknown)[0].email_address_id.startswith("idn_")
    k = await world.links.prepare_first_factor(known_client, known.id, redirect_url="/")
    u = await world.links.prepare_first_factor(unknown_client, unknown.id, redirect_url="/")
    assert k.verification is not None and u.verification is not None
    assert u.verification.status is k.verification.status is VerificationStatus.UNVERIFIED
    assert set(u.model_dump()) == set(k.model_dump())
    notice = world.mailer.last_to("nobody@example.org")
    assert notice is not None and "token=" not in notice.text and "no account" in notice.text
    assert await world.storage.get(Link, u.verification.link_id) is None  # no link exists
    assert await world.storage.get(Link, k.verification.link_id) is not None


async def test_without_enumeration_protection_unknown_and_taken_addresses_are_errors() -> None:
    world = make_world(enumeration_protection=False)
    await signed_up(world, "ann@example.org")
    client = await world.client()
    with pytest.raises(IdentifierNotFoundError):
        await world.links.create_sign_in(client, "nobody@example.org")
    with pytest.raises(IdentifierExistsError):
        await world.links.create_sign_up(client, "ann@example.org")


async def test_sign_up_for_a_taken_address_signs_its_owner_in(world: World) -> None:
    _, token = await signed_up(world, "ann@example.org")
    ann = await world.links.require_session(token)
    client, _, token = await world.sent_sign_up()
    result = await world.links.verify_link(token, client)
    assert result.session is not None and result.session.user_id == ann.user_id
    assert len(await world.storage.list(EmailAddress, "email", "ann@example.org")) == 1


async def test_email_address_management(world: World) -> None:
    client, token = await signed_up(world)
    session = await world.links.require_session(token)
    user = await world.links.get_user(session.user_id)
    first = user.primary_email_address_id
    assert first is not None
    added = await world.links.add_email_address(session, "work@example.org")
    with pytest.raises(IdentifierExistsError):
        await world.links.add_email_address(session, "Work@example.org")
    with pytest.raises(InvalidStateError):
        await world.links.set_primary_email_address(session, added.id)  # not verified yet
    await world.links.prepare_email_verification(session, added.id, redirect_url="/")
    await world.links.verify_link(world.last_link("work@example.org"), client)
    user = await world.links.set_primary_email_address(session, added.id)
    assert user.primary_email_address_id == added.id
    await world.links.remove_email_address(session, first)
    assert [a.email for a in await world.links.list_email_addresses(session.user_id)] == [
        "work@example.org"
    ]
    with pytest.raises(InvalidStateError):
        await world.links.remove_email_address(session, added.id)  # the primary one
    assert await world.storage.find(EmailAddress, "claimed_email", "ann@example.org") is None


async def test_sessions_list_is_per_user(world: World) -> None:
    _, ann_token = await signed_up(world, "ann@example.org")
    await signed_up(world, "bob@example.org")
    ann = await world.links.require_session(ann_token)
    sessions = await world.links.list_sessions(ann.user_id)
    assert [s.id for s in sessions] == [ann.id]
    assert all(isinstance(s, Session) for s in sessions)
