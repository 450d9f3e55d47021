"""The link path in the core, against the crypto floor and django-sesame (target 4).

- crypto floor: the least a single-use emailed link can cost: ``secrets.token_urlsafe(32)``,
  two HMAC-SHA256 (the digest stored when issuing, the one looked up when clicking) and one
  ``hmac.compare_digest``;
- the link path on memory storage, what target 4 names (issue + digest + atomic consume + session
  grant): a started sign-in of an existing user has its link issued (token, digest, stored with
  the attempt's verification; the email built by a renderer that only puts the link in it and
  handed to the mailer), then the same browser clicks it: the link consumed by one atomic
  compare-and-set, the attempt completed and a session granted (the session token minted and
  digested). The browser and its sign-in are made before the timing starts;
- for context, the least Python around the same steps (``least_python``): a dict store, a
  version compare-and-set, the link's and the session's tokens and HMACs, and nothing else;
- django-sesame's token round trip on Django's ORM (SQLite in memory): ``get_token(user)`` then
  ``get_user(token)``, with ``SESAME_ONE_TIME = True`` so that the token is single-use as a link
  must be (its check reads the user and writes ``last_login``);
- the whole flow, the same with the shipped email templates rendered (text and HTML), against the
  link path plus one render of the same email (target: within 2×);
- for context, a whole sign-in: a new browser and its sign-in started (the address checked, the
  account looked up, the browser's earlier attempts ended), then the link path;
- for context, the link path with the budgets a link spends counted, as they are by default
  (links per address and per IP: three counter updates), set too high to be reached. The other
  rows, like every benchmark, run with the budgets off.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from magiclink_core import Client, MagicLinks, SignIn
from magiclink_core.emails import EmailRenderer
from magiclink_core.emails.renderer import LinkEmail
from magiclink_core.mailers import MemoryMailer
from magiclink_core.ports import EmailMessage
from magiclink_core.storage import MemoryStorage

from ._harness import Section, ratio, sample_sign_in_email, side_by_side, side_by_side_sync, us
from ._stores import settings
from .bench_middleware import signed_in

_TOKEN = re.compile(r"token=(mll1_[A-Za-z0-9_-]{43})")


class LinkOnlyRenderer(EmailRenderer):
    """An email holding the link and nothing else: the link path without the templates."""

    def render(self, email: LinkEmail) -> EmailMessage:
        link = email.link_url or ""
        return EmailMessage(to=email.to, subject="", text=link, html=link, kind="sign_in")


class Outbox(MemoryMailer):
    """Keeps only the last message (a long run would otherwise keep them all)."""

    async def send(self, message: EmailMessage) -> None:
        self.outbox[:] = [message]


def crypto_floor() -> Any:
    """The floor as target 4 defines it: one token, two HMAC-SHA256, one comparison."""
    key = secrets.token_bytes(32)

    def floor() -> bool:
        token = secrets.token_urlsafe(32)
        stored = hmac.new(key, token.encode(), hashlib.sha256).digest()
        clicked = hmac.new(key, token.encode(), hashlib.sha256).digest()
        return hmac.compare_digest(stored, clicked)

    return floor


def least_python() -> Any:
    """The least Python around what target 4 names, for context: a link issued (a token, its
    HMAC stored in a dict with its attempt and expiry), then clicked (the HMAC again, the link
    looked up, checked unused and unexpired, consumed by a version compare-and-set, a session
    token minted and its HMAC stored, the attempt marked complete). No records, state machine,
    email, mailer or wake-up: what any Python implementation pays before its own features."""
    key = secrets.token_bytes(32)
    links: dict[str, dict[str, Any]] = {}
    sessions: dict[str, dict[str, Any]] = {}
    attempts: dict[str, str] = {}
    ids = iter(range(1 << 62))

    def issue_and_click() -> None:
        now = datetime.now(UTC)
        attempt_id = f"sia_{next(ids)}"
        token = secrets.token_urlsafe(32)
        digest = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
        links[digest] = {"attempt": attempt_id, "version": 1, "expire_at": now + _TTL}
        attempts[attempt_id] = "pending"
        # the click
        now = datetime.now(UTC)
        digest = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
        link = links.get(digest)
        if link is None or "consumed_at" in link or link["expire_at"] <= now:
            raise RuntimeError("the link was refused")
        if links[digest]["version"] != link["version"]:
            raise RuntimeError("the link changed")
        links[digest] = {**link, "consumed_at": now, "version": link["version"] + 1}
        session_token = secrets.token_urlsafe(32)
        session_digest = hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()
        sessions[session_digest] = {"attempt": attempt_id, "expire_at": now + _SESSION_TTL}
        attempts[attempt_id] = "complete"

    return issue_and_click


_TTL = timedelta(minutes=10)
_SESSION_TTL = timedelta(days=7)


class LinkPath:
    """Sign-ins by link on memory storage, of an existing user: each from a new browser (as
    sign-ins are; one browser signing in thousands of times would pile up thousands of ended
    sessions, kept until purged, that each sign-in reads to end)."""

    def __init__(self, renderer: EmailRenderer, **overrides: Any) -> None:
        self.mailer = Outbox()
        self.links = MagicLinks(
            settings(email_verification="link", **overrides),
            storage=MemoryStorage(),
            mailer=self.mailer,
            emails=renderer,
        )
        self.email = "ann@example.org"
        self._started: list[tuple[Client, SignIn]] = []

    async def __aenter__(self) -> LinkPath:
        await signed_in(self.links, self.mailer, self.email)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.links.aclose()

    async def start(self) -> tuple[Client, SignIn]:
        """A new browser, and a sign-in started on it (no email yet)."""
        client, _ = await self.links.create_client()
        return client, await self.links.create_sign_in(client, self.email)

    async def ready(self, n: int) -> None:
        """Start ``n`` sign-ins for the next ``n`` calls of :meth:`issue_and_click`."""
        self._started = [await self.start() for _ in range(n)]

    async def issue_and_click(self) -> None:
        """The link path (target 4): a started sign-in's link issued (token, digest, stored with
        the attempt's verification, the email built and handed to the mailer), then clicked by
        the same browser (the link consumed by one atomic compare-and-set, the attempt
        completed, a session granted)."""
        client, sign_in = self._started.pop()
        await self._issue_and_click(client, sign_in)

    async def whole_sign_in(self) -> None:
        """A new browser, its sign-in started, then the link path."""
        await self._issue_and_click(*await self.start())

    async def _issue_and_click(self, client: Client, sign_in: SignIn) -> None:
        await self.links.prepare_first_factor(client, sign_in.id, redirect_url="/home")
        match = _TOKEN.search(self.mailer.outbox[-1].text)
        if match is None:
            raise RuntimeError("no link in the email")
        result = await self.links.verify_link(match.group(1), client)
        if result.session_token is None:
            raise RuntimeError("no session granted")


def sesame_round_trip() -> Any:
    """django-sesame's get_token + get_user on Django's ORM, or None when not installed."""
    try:
        import django
        from django.conf import settings as django_settings
    except ImportError:
        return None
    try:
        import sesame  # noqa: F401
    except ImportError:
        return None
    # timed as plain calls (no thread hop, its fairest): Django allows that only when told
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not django_settings.configured:
        django_settings.configure(
            SECRET_KEY="benchmark-" + "x" * 50,
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "sesame"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            AUTHENTICATION_BACKENDS=["sesame.backends.ModelBackend"],
            SESAME_ONE_TIME=True,
            USE_TZ=True,
        )
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, run_syncdb=True)
    from django.contrib.auth import get_user_model
    from sesame.utils import get_token, get_user

    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username="ann", email="ann@example.org")
    holder = [user]

    def round_trip() -> None:
        # one-time: the check moves last_login, so the next token is made from the user it
        # returned, as the next email would be
        signed_in = get_user(get_token(holder[0]))
        if signed_in is None:
            raise RuntimeError("sesame refused its own token")
        holder[0] = signed_in

    return round_trip


def one_render(renderer: EmailRenderer) -> Any:
    email = sample_sign_in_email()
    return lambda: renderer.render(email)


async def run(quick: bool) -> Section:
    section = Section("The link path in the core (target 4)")
    n, rounds = (50, 2) if quick else (2_000, 9)
    counted = LinkPath(LinkOnlyRenderer(), links_per_address=10**9, links_per_ip=10**9)
    async with (
        LinkPath(LinkOnlyRenderer()) as plain,
        LinkPath(EmailRenderer()) as rendered,
        counted,
    ):
        paths = {"link path": plain, "whole flow": rendered, "budgets counted": counted}

        async def before_round(name: str) -> None:
            if name in paths:
                await paths[name].ready(n)

        flows = await side_by_side(
            {
                "link path": plain.issue_and_click,
                "whole flow": rendered.issue_and_click,
                "new browser": plain.whole_sign_in,
                "budgets counted": counted.issue_and_click,
            },
            n=n,
            rounds=rounds,
            before_round=before_round,
        )
    sync: dict[str, Any] = {
        "floor": crypto_floor(),
        "least python": least_python(),
        "render": one_render(EmailRenderer()),
    }
    sesame = sesame_round_trip()
    if sesame is not None:
        sync["sesame"] = sesame
    else:
        section.note("django-sesame is not installed (the `bench` extra): its row is left out.")
    plain_times = side_by_side_sync(sync, n=n * 5, rounds=rounds)
    floor, path, whole = plain_times["floor"], flows["link path"], flows["whole flow"]
    render = plain_times["render"]
    section.add(
        "crypto floor: token_urlsafe(32) + two HMAC-SHA256 + compare_digest",
        us(floor),
        "",
        "1.00× floor",
    )
    section.add(
        "link path on memory: issue (token, digest, stored, emailed), click (atomic consume), "
        "session",
        us(path),
        f"floor {us(floor)}",
        f"{ratio(path, floor, line=10)} floor",
        "≤ 10× floor",
        path <= 10 * floor,
    )
    least = plain_times["least python"]
    section.add(
        "for context: the least Python around it (a dict store, a version compare-and-set, "
        "the link's and the session's tokens and HMACs; no records, state machine or email)",
        us(least),
        f"floor {us(floor)}",
        f"{ratio(least, floor)} floor",
    )
    if "sesame" in plain_times:
        peer = plain_times["sesame"]
        section.add(
            "django-sesame get_token + get_user (one-time), Django ORM on SQLite in memory",
            us(peer),
            f"link path {us(path)}",
            f"{ratio(peer, path, line=6, places=1)} the link path",
            "≥ 6× the link path",
            peer >= 6 * path,
        )
    section.add("one render of the sign-in email (text + HTML, jinja2)", us(render))
    section.add(
        "the link path, the email rendered",
        us(whole),
        f"link path + one render {us(path + render)}",
        ratio(whole, path + render, line=2),
        "≤ 2×",
        whole <= 2 * (path + render),
    )
    browser = flows["new browser"]
    section.add(
        "a whole sign-in: a new browser, its sign-in started, then the link path",
        us(browser),
        f"link path {us(path)}",
        f"{ratio(browser, floor)} floor",
    )
    budgets = flows["budgets counted"]
    section.add(
        "the link path, its budgets counted (links per address and per IP, not reached)",
        us(budgets),
        f"link path {us(path)}",
        f"{ratio(budgets, floor)} floor ({ratio(budgets, path)} the link path)",
    )
    return section
