"""Bad input everywhere, in the core: hypothesis over every public call of ``MagicLinks`` that
takes input from outside (an address, an id, a token, a code, a redirect, a strategy, a version).

Each input is arbitrary text (lone surrogates included), bytes decoded every which way, near
misses of the real thing, or a value of the wrong type altogether (a web layer may hand the core
whatever JSON held). Whatever it is, the call either succeeds or raises one of the core's typed
errors (an :class:`~magiclink_core.AuthError`, with its code and status), never anything else;
a refused call leaves the storage as it found it (no record added, removed or half-written:
only a wrong code counts against its attempt); and no call leaves a record no storage, answer or
email could carry (text UTF-8 cannot encode).

Each example runs against a fresh world: a client with a sign-up and a sign-in in progress
(links emailed), and a signed-in user with an unverified address (link emailed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from magiclink_core import (
    AuthError,
    Client,
    EmailAddress,
    Link,
    Record,
    Session,
    SessionStatus,
    SignIn,
    SignUp,
)
from magiclink_core.domain.models import RECORD_TYPES

from ._support import World, make_world

LINK = "mll1_" + "A" * 43
NEAR_MISSES: list[object] = [
    "",
    " ",
    "\x00",
    "\ud800",
    "a\udcff@example.org",
    "ann@example.org",
    "ANN@EXAMPLE.ORG ",
    "ann@example.org, eve@evil.example",
    '"ann"@example.org',
    "Ann <ann@example.org>",
    "ann\uff20example.org",
    "a" * 65 + "@example.org",
    "ann@xn--.org",
    "/",
    "/\ud800",
    "/日本",
    "//evil.example",
    "https://app.example.com:99999/",
    "javascript:alert(1)",
    "https://user@app.example.com/",
    LINK,
    "mll1_" + "é" * 43,
    "mll1_" + "\ud800" * 43,
    "mls1_" + "A" * 43,
    "123456",
    "1 2-3 4 5 6",
    "١٢٣٤٥٦",  # Arabic-Indic digits
    "email_link",
    "email_code",
    "-1",
    "9" * 30,
    "x" * 5000,
    None,
    True,
    0,
    -1,
    1.5,
    float("nan"),
    b"mll1_",
    [],
    ["ann@example.org"],
    {"email": "ann@example.org"},
]
"""Tried on every call, before hypothesis draws its own."""
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=60),  # surrogates too
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
ANY = st.one_of(TEXT, TEXT, ODD)  # text twice as often


@dataclass
class Scene:
    world: World
    client: Client
    sign_up: SignUp
    sign_in: SignIn
    link: str
    session: Session
    address: EmailAddress

    @property
    def links(self) -> Any:
        return self.world.links


async def scene() -> Scene:
    world = make_world(attempts_per_ip=0, links_per_ip=0)
    links = world.links
    # a user, signed in on a client of their own (recent enough for account changes)
    owner, _ = await links.create_client()
    joined = await links.create_sign_up(owner, "owner@example.org")
    await links.prepare_sign_up_verification(owner, joined.id, redirect_url="/")
    result = await links.verify_link(world.last_link("owner@example.org"), owner)
    assert result.session is not None
    session = result.session
    address = await links.add_email_address(session, "second@example.org")
    await links.prepare_email_verification(session, address.id, redirect_url="/")
    # another client with a sign-up and a sign-in in progress, their links emailed
    client, _ = await links.create_client()
    sign_up = await links.create_sign_up(client, "ann@example.org")
    await links.prepare_sign_up_verification(client, sign_up.id, redirect_url="/welcome")
    sign_in = await links.create_sign_in(client, "owner@example.org")
    await links.prepare_first_factor(client, sign_in.id, redirect_url="/")
    return Scene(
        world, client, sign_up, sign_in, world.last_link("ann@example.org"), session, address
    )


Call = Callable[[Scene, Any], Awaitable[object] | object]

CALLS: dict[str, Call] = {
    "get_client": lambda s, v: s.links.get_client(v),
    "create_sign_up": lambda s, v: s.links.create_sign_up(s.client, v),
    "prepare_sign_up_verification(id)": lambda s, v: s.links.prepare_sign_up_verification(
        s.client, v, redirect_url="/"
    ),
    "prepare_sign_up_verification(redirect_url)": (
        lambda s, v: s.links.prepare_sign_up_verification(s.client, s.sign_up.id, redirect_url=v)
    ),
    "prepare_sign_up_verification(strategy)": lambda s, v: s.links.prepare_sign_up_verification(
        s.client, s.sign_up.id, redirect_url="/", strategy=v
    ),
    "create_sign_in": lambda s, v: s.links.create_sign_in(s.client, v),
    "prepare_first_factor(id)": lambda s, v: s.links.prepare_first_factor(
        s.client, v, redirect_url="/"
    ),
    "prepare_first_factor(email_address_id)": lambda s, v: s.links.prepare_first_factor(
        s.client, s.sign_in.id, email_address_id=v, redirect_url="/"
    ),
    "prepare_first_factor(redirect_url)": lambda s, v: s.links.prepare_first_factor(
        s.client, s.sign_in.id, redirect_url=v
    ),
    "inspect_link": lambda s, v: s.links.inspect_link(v, s.client),
    "open_link": lambda s, v: s.links.open_link(v, s.client),
    "verify_link(token)": lambda s, v: s.links.verify_link(v, s.client),
    "verify_link(confirmation_code)": lambda s, v: s.links.verify_link(
        s.link, None, confirmation_code=v
    ),
    "resend_link": lambda s, v: s.links.resend_link(v),
    "attempt_first_factor(id)": lambda s, v: s.links.attempt_first_factor(s.client, v, code="1"),
    "attempt_first_factor(code)": lambda s, v: s.links.attempt_first_factor(
        s.client, s.sign_in.id, code=v
    ),
    "attempt_first_factor(strategy)": lambda s, v: s.links.attempt_first_factor(
        s.client, s.sign_in.id, code="123456", strategy=v
    ),
    "attempt_sign_up_verification(code)": lambda s, v: s.links.attempt_sign_up_verification(
        s.client, s.sign_up.id, code=v
    ),
    "attempt_email_verification(id)": lambda s, v: s.links.attempt_email_verification(
        s.session, v, code="123456"
    ),
    "attempt_email_verification(code)": lambda s, v: s.links.attempt_email_verification(
        s.session, s.address.id, code=v
    ),
    "check_redirect_url": lambda s, v: s.links.check_redirect_url(v),
    "add_email_address": lambda s, v: s.links.add_email_address(s.session, v),
    "prepare_email_verification(id)": lambda s, v: s.links.prepare_email_verification(
        s.session, v, redirect_url="/"
    ),
    "prepare_email_verification(redirect_url)": lambda s, v: s.links.prepare_email_verification(
        s.session, s.address.id, redirect_url=v
    ),
    "set_primary_email_address": lambda s, v: s.links.set_primary_email_address(s.session, v),
    "remove_email_address": lambda s, v: s.links.remove_email_address(s.session, v),
    "get_user": lambda s, v: s.links.get_user(v),
    "authenticate": lambda s, v: s.links.authenticate(v),
    "require_session": lambda s, v: s.links.require_session(v),
    "activate_session": lambda s, v: s.links.activate_session(s.client, v),
    "end_session": lambda s, v: s.links.end_session(v, user_id=s.session.user_id),
    "list_sessions": lambda s, v: s.links.list_sessions(v),
    "get_sign_up": lambda s, v: s.links.get_sign_up(s.client, v),
    "get_sign_in": lambda s, v: s.links.get_sign_in(s.client, v),
    "get_email_address": lambda s, v: s.links.get_email_address(s.session, v),
    "wait_for_sign_up(since_version)": lambda s, v: s.links.wait_for_sign_up(
        s.client, s.sign_up.id, timeout=timedelta(0), since_version=v
    ),
    "wait_for_sign_in(id)": lambda s, v: s.links.wait_for_sign_in(
        s.client, v, timeout=timedelta(0)
    ),
    "wait_for_sign_in(since_status)": lambda s, v: s.links.wait_for_sign_in(
        s.client, s.sign_in.id, timeout=timedelta(0), since_status=v
    ),
}
# the wait's timeout is a timedelta the web layer made of ?wait= (any, however odd)
TIMEOUT_CALL = "wait_for_email_address(timeout)"
CALLS[TIMEOUT_CALL] = lambda s, v: s.links.wait_for_email_address(
    s.session, s.address.id, timeout=v
)
INPUTS = {TIMEOUT_CALL: st.timedeltas(max_value=timedelta(milliseconds=1))}

# a wrong code counts against its attempt (and, the last allowed one, fails it and its link):
# those refusals may update the attempt and its link, and nothing else
COUNTS_GUESSES = {
    "verify_link(confirmation_code)",
    "attempt_first_factor(code)",
    "attempt_first_factor(strategy)",  # email_code, with a wrong code
    "attempt_sign_up_verification(code)",
    "attempt_email_verification(code)",
}
GUESSED_AT = (SignUp, SignIn, EmailAddress, Link)

Snapshot = dict[tuple[str, str], Record]


def snapshot(world: World) -> Snapshot:
    return {
        (kind.__name__, record_id): record
        for kind in RECORD_TYPES
        for record_id, record in world.storage._records[kind].items()
    }


def unencodable(record: Record) -> list[str]:
    """The fields of ``record`` holding text UTF-8 cannot carry (no storage, answer or email
    could)."""
    bad: list[str] = []

    def walk(path: str, value: object) -> None:
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                bad.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{path}.{key}", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{path}[{index}]", item)

    walk(type(record).__name__, record.model_dump())
    return bad


@dataclass
class Saved:
    """The memory storage's contents, to put back before each example (every example starts
    from the same scene, at a fraction of the cost of building it again)."""

    records: dict[type[Record], dict[str, Record]]
    unique: dict[Any, dict[str, str]]
    listed: dict[Any, dict[str, set[str]]]
    counters: dict[str, Any]

    @classmethod
    def of(cls, world: World) -> Saved:
        storage = world.storage
        return cls(
            {kind: dict(rows) for kind, rows in storage._records.items()},
            {key: dict(index) for key, index in storage._unique.items()},
            _copy_listed(storage._listed),
            dict(storage._counters),
        )

    def restore(self, world: World) -> None:
        storage = world.storage
        storage._records.clear()
        storage._records.update({kind: dict(rows) for kind, rows in self.records.items()})
        storage._unique.clear()
        storage._unique.update({key: dict(index) for key, index in self.unique.items()})
        storage._listed.clear()
        storage._listed.update(_copy_listed(self.listed))
        storage._counters = dict(self.counters)


def _copy_listed(listed: dict[Any, dict[str, set[str]]]) -> dict[Any, dict[str, set[str]]]:
    return {key: {value: set(ids) for value, ids in index.items()} for key, index in listed.items()}


async def run(s: Scene, name: str, value: Any) -> None:
    before = snapshot(s.world)
    try:
        outcome = CALLS[name](s, value)
        if isinstance(outcome, Awaitable):
            await outcome
    except AuthError as exc:
        assert exc.code and 400 <= exc.status_hint < 600, exc
        after = snapshot(s.world)
        assert set(after) == set(before), f"{name} refused ({exc!r}) yet added or removed records"
        changed = [key for key in after if after[key] is not before[key]]
        if name in COUNTS_GUESSES:
            allowed = {kind.__name__ for kind in GUESSED_AT}
            assert all(kind in allowed for kind, _ in changed), (name, exc, changed)
        else:
            assert not changed, f"{name} refused ({exc!r}) yet changed {changed}"
    for key, record in snapshot(s.world).items():
        assert not unencodable(record), (name, key, unencodable(record))


FUZZ = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_any_input_is_refused_with_a_typed_error_and_leaves_nothing_behind(name: str) -> None:
    with start_blocking_portal() as portal:  # one event loop for the scene and every example
        s = portal.call(scene)
        saved = Saved.of(s.world)

        @FUZZ
        @given(value=INPUTS.get(name, ANY))
        def each(value: Any) -> None:
            saved.restore(s.world)
            portal.call(run, s, name, value)

        if name not in INPUTS:
            for value in NEAR_MISSES:
                each = example(value=value)(each)
        each()


def test_the_scene_is_what_the_calls_expect() -> None:
    async def check() -> None:
        s = await scene()
        assert (await s.links.get_sign_up(s.client, s.sign_up.id)).verification is not None
        assert (await s.links.get_sign_in(s.client, s.sign_in.id)).verification is not None
        assert (await s.links.inspect_link(s.link, s.client)).needs_confirmation is False
        live = await s.links.authenticate(None)
        assert live is None and s.session.status is SessionStatus.ACTIVE

    anyio.run(check)
