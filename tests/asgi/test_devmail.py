"""The development mailbox: off unless asked, localhost only, lists and opens every email."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from magiclink_asgi.devmail import DevMailboxRefused, is_loopback_host
from magiclink_asgi.pages import HostedPages
from magiclink_core import EmailMessage, MagicLinks, Settings
from magiclink_core.mailers import ConsoleMailer, MemoryMailer
from magiclink_core.storage import MemoryStorage
from tests.support import SECRET

pytestmark = pytest.mark.anyio


def make_links(base_url: str = "http://127.0.0.1:8000", mailer: Any = None) -> MagicLinks:
    return MagicLinks(
        Settings(secret=SECRET, base_url=base_url),
        storage=MemoryStorage(),
        mailer=mailer if mailer is not None else MemoryMailer(),
    )


def client(app: Any, peer: str = "127.0.0.1", host: str = "127.0.0.1:8000") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


async def send_two(links: MagicLinks) -> None:
    await links.mailer.send(
        EmailMessage(
            to="ada@example.com",
            subject="Sign in to magiclink",
            text="Open http://127.0.0.1:8000/auth/v1/verify?token=abc to sign in.",
            html=(
                "<html><head></head><body><a href='http://127.0.0.1:8000/auth/v1/verify"
                "?token=abc'>Sign in</a><script>alert(1)</script></body></html>"
            ),
            kind="sign_in",
        )
    )
    await links.mailer.send(
        EmailMessage(to="bob@example.com", subject="<b>Hi</b>", text="no link", html="", kind="")
    )


def coded(to: str, subject: str, text: str, code: str) -> EmailMessage:
    """A plain-text email that carries a one-time code: a verification if it offers a link too,
    else a sign-in by code alone."""
    kind = "verify_email" if "verify?token=" in text else "sign_in"
    return EmailMessage(to=to, subject=subject, text=text, html="", kind=kind, email_code=code)


async def test_off_unless_asked() -> None:
    links = make_links()
    await send_two(links)
    async with client(HostedPages(links)) as c:
        assert (await c.get("/auth/dev/mailbox")).status_code == 404
        assert (await c.get("/auth/dev/mailbox/1")).status_code == 404


async def test_lists_every_email_newest_first_and_opens_one() -> None:
    links = make_links()
    await send_two(links)
    async with client(HostedPages(links, dev_mailbox=True)) as c:
        r = await c.get("/auth/dev/mailbox")
        assert r.status_code == 200
        assert r.text.index("bob@<wbr>example.com") < r.text.index("ada@<wbr>example.com")
        assert "&lt;b&gt;Hi&lt;/b&gt;" in r.text
        assert 'href="/auth/dev/mailbox/1"' in r.text

        r = await c.get("/auth/dev/mailbox/1")
        assert r.status_code == 200
        assert (
            'class="ml-button ml-mail-link" href="http://127.0.0.1:8000/auth/v1/verify?token=abc"'
            in r.text
        )
        assert 'src="/auth/dev/mailbox/1/html"' in r.text
        assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in r.text

        r = await c.get("/auth/dev/mailbox/1/html")
        csp = r.headers["content-security-policy"]
        assert csp.startswith("sandbox ")  # the email's own HTML runs no script
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert '<base target="_blank">' in r.text

        for missing in (
            "/auth/dev/mailbox/0",
            "/auth/dev/mailbox/3",
            "/auth/dev/mailbox/x",
            "/auth/dev/mailbox/1/other",
        ):
            assert (await c.get(missing)).status_code == 404


async def test_shows_the_code_of_each_email_beside_its_link() -> None:
    links = make_links()
    await send_two(links)
    link_text = "Open http://127.0.0.1:8000/auth/v1/verify?token=def or type 402918."
    await links.mailer.send(coded("cy@example.com", "Verify your email", link_text, "402918"))
    await links.mailer.send(
        coded("di@example.com", "Sign in", "Type 77102938 on the device that asked.", "77102938")
    )
    async with client(HostedPages(links, dev_mailbox=True)) as c:
        listing = (await c.get("/auth/dev/mailbox")).text
        with_link = (await c.get("/auth/dev/mailbox/3")).text
        code_only = (await c.get("/auth/dev/mailbox/4")).text
        no_code = (await c.get("/auth/dev/mailbox/1")).text
    assert "Code <strong data-ml-email-code>402918</strong>" in listing
    assert "<strong data-ml-email-code>77102938</strong>" in listing
    assert listing.count("data-ml-email-code") == 2  # the emails without a code show none

    # the link, and beside it the code, labelled as the one typed on the device that asked
    assert 'href="http://127.0.0.1:8000/auth/v1/verify?token=def">Open the link</a>' in with_link
    assert re.search(
        r'aria-labelledby="ml-mail-code-label">\s*<p class="ml-code-label" '
        r'id="ml-mail-code-label">Code from the email \(instead of the link\): type it on the '
        r"device that asked</p>\s*<p class=\"ml-code\" data-ml-email-code>402918</p>",
        with_link,
    ), with_link
    assert "Open the link" not in code_only
    assert "Code from the email: type it on the device that asked" in code_only
    assert "data-ml-email-code>77102938<" in code_only
    assert "data-ml-email-code" not in no_code and "Open the link" in no_code


async def test_an_address_is_escaped_and_may_wrap_after_its_at_sign() -> None:
    links = make_links()
    await links.mailer.send(
        EmailMessage(to='"<i>o\'neil"@example.com', subject="Hi", text="", html="", kind="")
    )
    async with client(HostedPages(links, dev_mailbox=True)) as c:
        listing = (await c.get("/auth/dev/mailbox")).text
        opened = (await c.get("/auth/dev/mailbox/1")).text
    shown = '<span class="ml-email">&#34;&lt;i&gt;o&#39;neil&#34;@<wbr>example.com</span>'
    assert f"to {shown}" in listing
    assert f"To {shown}" in opened
    assert "<i>" not in listing + opened


async def test_empty_mailbox() -> None:
    async with client(HostedPages(make_links(), dev_mailbox=True)) as c:
        r = await c.get("/auth/dev/mailbox")
    assert "No emails yet" in r.text


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("192.168.1.20", "127.0.0.1:8000"),
        ("127.0.0.1", "app.example.com"),
        ("10.0.0.1", "10.0.0.2:8000"),
    ],
)
async def test_answers_only_loopback_requests(peer: str, host: str) -> None:
    links = make_links()
    await send_two(links)
    async with client(HostedPages(links, dev_mailbox=True), peer=peer, host=host) as c:
        r = await c.get("/auth/dev/mailbox/1")
    assert r.status_code == 404
    assert "token=abc" not in r.text


@pytest.mark.parametrize("base_url", ["https://app.example.com", "https://10.0.0.5"])
def test_refuses_to_start_off_localhost(base_url: str) -> None:
    with pytest.raises(DevMailboxRefused, match="only on localhost"):
        HostedPages(make_links(base_url=base_url), dev_mailbox=True)


def test_refuses_a_mailer_without_an_outbox() -> None:
    with pytest.raises(DevMailboxRefused, match="outbox"):
        HostedPages(make_links(mailer=ConsoleMailer()), dev_mailbox=True)


def test_starts_on_each_loopback_name() -> None:
    for base in ("http://localhost:8000", "http://127.0.0.1", "http://[::1]:9000"):
        assert HostedPages(make_links(base_url=base), dev_mailbox=True).mailbox is not None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("dev.localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
