"""Account enumeration: telling from the answers whether an address has an account. With
enumeration protection (on by default) a sign-in for an unknown address runs like any other:
its ``email_address_id`` is the stable keyed id every address's sign-in gets (so neither one
answer nor two, nor a rotation of the secret, tell it apart), every field of every answer has
the same shape, the status and the time to answer are the same within noise (the email goes out
off the response path; both render one email), and the email it gets says there is no account
and where to sign up."""

from __future__ import annotations

import random
import re
import statistics
import time
from typing import Any

import httpx
import pytest

from magiclink_asgi import HostedPages
from magiclink_core import InvalidRequestError, MagicLinks, Settings
from magiclink_core.mailers import MemoryMailer
from magiclink_core.storage import MemoryStorage
from tests.support import SECRET, link_in

from ..asgi.harness import serve
from ..core._support import make_world, signed_up
from ._http import make_app

pytestmark = pytest.mark.anyio
ID = re.compile(r"^[a-z]+_[0-9a-f]{32}$")
SAMPLES = 200
NEW_SECRET = "rotated-secret-" + "z" * 40


async def test_an_unknown_address_gets_a_stable_id_shaped_like_a_real_one() -> None:
    world = make_world()
    await signed_up(world, "known@example.org")
    client = await world.client()
    known = [await world.links.create_sign_in(client, "known@example.org") for _ in range(2)]
    unknown = [await world.links.create_sign_in(client, "nobody@example.org") for _ in range(2)]
    assert known[0].email_address_id == known[1].email_address_id
    assert unknown[0].email_address_id == unknown[1].email_address_id  # two asks: alike
    for sign_in in (known[0], unknown[0]):
        assert re.fullmatch(r"idn_[0-9a-f]{32}", sign_in.email_address_id)
    other = await world.links.create_sign_in(client, "other@example.org")
    assert other.email_address_id != unknown[0].email_address_id
    elsewhere = make_world(secret="another-secret-" + "y" * 40)  # keyed: not guessable
    stranger = await elsewhere.links.create_sign_in(await elsewhere.client(), "nobody@example.org")
    assert stranger.email_address_id != unknown[0].email_address_id


async def test_rotating_the_secret_does_not_tell_an_unknown_address_from_a_known_one() -> None:
    """An attacker who notes the ``email_address_id`` of two addresses before a rotation and
    again after it sees both move alike: were a known address's id its record's (fixed) and an
    unknown one's keyed (new key, new id), the rotation would tell them apart."""
    before = make_world()
    await signed_up(before, "known@example.org")
    after = make_world(before.storage, secret=NEW_SECRET, secret_fallbacks=[SECRET])
    retired = make_world(before.storage, secret=NEW_SECRET)
    moved = {}
    for email in ("known@example.org", "nobody@example.org"):
        ids = [
            (await world.links.create_sign_in(await world.client(), email)).email_address_id
            for world in (before, after, retired)
        ]
        moved[email] = [ids[0] != ids[1], ids[1] != ids[2]]
    assert moved["known@example.org"] == moved["nobody@example.org"], moved


async def test_the_factor_id_a_sign_in_gives_is_the_one_it_takes() -> None:
    """The id of a known address's factor is what ``prepare_first_factor`` accepts, so a client
    that echoes it back gets its email; one of another sign-in is refused."""
    world = make_world()
    await signed_up(world, "known@example.org")
    client, other = await world.client(), await world.client()
    sign_in = await world.links.create_sign_in(client, "known@example.org")
    elsewhere = await world.links.create_sign_in(other, "nobody@example.org")
    factor = world.links.first_factors(sign_in)[0].email_address_id
    with pytest.raises(InvalidRequestError):
        await world.links.prepare_first_factor(
            client, sign_in.id, email_address_id=elsewhere.email_address_id, redirect_url="/"
        )
    sent = await world.links.prepare_first_factor(
        client, sign_in.id, email_address_id=factor, redirect_url="/"
    )
    assert sent.verification is not None
    assert link_in(world.mailer.outbox[-1].text)


def shape(value: Any) -> Any:
    """What an attacker can compare without knowing the secret: keys, types, enumerations and
    the form of ids; not the random values themselves."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str) and ID.match(value):
        return f"id:{value.split('_')[0]}"
    if isinstance(value, str) and "@" in value:
        return "address"
    if isinstance(value, str) and value.isdigit():
        return f"digits:{len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**12:
        return "time"
    return value


async def sign_in_over_http(browser: httpx.AsyncClient, email: str) -> list[httpx.Response]:
    created = await browser.post("/auth/v1/client/sign_ins", json={"identifier": email})
    prepared = await browser.post(
        f"/auth/v1/client/sign_ins/{created.json()['id']}/prepare_first_factor",
        json={"strategy": "email_link", "redirect_url": "/home"},
    )
    state = await browser.get("/auth/v1/client")
    return [created, prepared, state]


def factor_id(answer: httpx.Response) -> str:
    return str(answer.json()["supported_first_factors"][0]["email_address_id"])


async def test_every_field_of_every_answer_is_alike() -> None:
    app = make_app(links_per_address=0)
    async with app.browser() as owner:
        created = await owner.post(
            "/auth/v1/client/sign_ups", json={"email_address": "known@example.org"}
        )
        await owner.post(
            f"/auth/v1/client/sign_ups/{created.json()['id']}/prepare_verification",
            json={"strategy": "email_link", "redirect_url": "/"},
        )
        message = app.mailer.last_to("known@example.org")
        assert message is not None
        await owner.get(link_in(message.text))
    async with app.browser() as attacker:
        await attacker.get("/auth/v1/client")  # its cookie, so no answer below sets one
        known = await sign_in_over_http(attacker, "known@example.org")
        unknown = await sign_in_over_http(attacker, "nobody@example.org")
        again = await sign_in_over_http(attacker, "nobody@example.org")
    for a, b in zip(known, unknown, strict=True):
        assert a.status_code == b.status_code == 200
        assert shape(a.json()) == shape(b.json())
        assert sorted(a.headers.keys()) == sorted(b.headers.keys())
    assert factor_id(unknown[0]) == factor_id(unknown[1]) == factor_id(again[0])
    assert (
        known[1].json()["first_factor_verification"]["supported_strategies"]
        == (unknown[1].json()["first_factor_verification"]["supported_strategies"])
    )


async def test_status_shape_and_time_are_alike_over_http() -> None:
    no_limits = {"attempts_per_ip": 0, "links_per_ip": 0, "links_per_address": 0}
    async with serve("starlette", **no_limits) as server:  # the app's lifespan runs
        async with server.browser() as owner:
            await owner.start_sign_up("known@example.org", f"{server.base_url}/")
            await owner.get(server.last_link("known@example.org"))
        ratios: list[float] = []
        shapes: dict[str, set[str]] = {"known": set(), "unknown": set()}
        order = random.Random(13)
        async with server.browser() as attacker:
            for _ in range(SAMPLES):  # pairs, taken side by side, so load and drift hit both
                pair = ["known", "unknown"]
                order.shuffle(pair)
                took: dict[str, float] = {}
                for kind in pair:
                    sent = len(server.mailer.outbox)
                    started = time.perf_counter()
                    answers = await sign_in_over_http(attacker, f"{kind}@example.org")
                    took[kind] = time.perf_counter() - started
                    assert [a.status_code for a in answers] == [200, 200, 200]
                    shapes[kind].add(repr([shape(a.json()) for a in answers]))
                    assert len(server.mailer.outbox) == sent + 1  # one email either way
                ratios.append(took["known"] / took["unknown"])
    assert shapes["known"] == shapes["unknown"] and len(shapes["known"]) == 1
    ratio = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"known/unknown time, median of {SAMPLES} pairs: {ratio:.3f} (quartiles {quartiles})")
    # a generous margin: noise moves the median ratio by a few percent; an email sent inline,
    # a DNS lookup or a password hash on one path only would move it by many times
    assert 2 / 3 < ratio < 3 / 2


@pytest.mark.parametrize(
    ("settings", "sign_up"),
    [
        ({}, "https://app.example.com/auth/sign-up"),
        ({"verify_path": "/login/v1/verify"}, "https://app.example.com/login/sign-up"),
        ({"sign_up_url": "/join"}, "https://app.example.com/join"),
        ({"sign_up_url": "https://www.example.com/start"}, "https://www.example.com/start"),
    ],
)
async def test_the_no_account_email_sends_the_person_to_the_sign_up_page(
    settings: dict[str, Any], sign_up: str
) -> None:
    world = make_world(**settings)
    client = await world.client()
    sign_in = await world.links.create_sign_in(client, "nobody@example.org")
    await world.links.prepare_first_factor(client, sign_in.id, redirect_url="/home")
    (message,) = world.mailer.outbox
    assert message.kind == "sign_in_no_account"
    assert f"sign up at {sign_up}\n" in message.text
    assert f'href="{sign_up}"' in message.html
    assert "token=" not in message.text + message.html and message.email_code is None
    for body in (message.text, message.html):
        assert "has no account" in body
        assert "nothing happens unless" not in body  # nothing could happen: no link, no code


def test_a_sign_up_url_must_be_a_path_or_an_absolute_url() -> None:
    for bad in ["join", "//evil.example/join", "javascript:alert(1)", "ftp://example.com/"]:
        with pytest.raises(ValueError, match="sign_up_url"):
            Settings(secret=SECRET, base_url="https://app.example.com", sign_up_url=bad)


async def test_the_development_mailbox_offers_no_link_for_the_no_account_email() -> None:
    links = MagicLinks(
        Settings(secret=SECRET, base_url="http://127.0.0.1:8000", links_per_address=0),
        storage=MemoryStorage(),
        mailer=MemoryMailer(),
    )
    client, _ = await links.create_client()
    for email in ["nobody@example.org", "new@example.org"]:
        if email.startswith("new"):
            attempt = await links.create_sign_up(client, email)
            await links.prepare_sign_up_verification(client, attempt.id, redirect_url="/")
        else:
            sign_in = await links.create_sign_in(client, email)
            await links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    pages = HostedPages(links, dev_mailbox=True)
    transport = httpx.ASGITransport(app=pages, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        no_account = await c.get("/auth/dev/mailbox/1")
        sign_up = await c.get("/auth/dev/mailbox/2")
    assert no_account.status_code == sign_up.status_code == 200
    assert "has no account" in no_account.text
    assert "Open the link" not in no_account.text
    assert "Open the link" in sign_up.text
