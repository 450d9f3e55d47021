"""An attacker's User-Agent in the victim's email: the email and the confirmation page say which
device asked, and a client chooses its own User-Agent. Only a well-known browser and system
family from a fixed list is shown; anything else is "an unknown browser" (or nothing), so no
text of the attacker's ("Secure your account at https://…") reaches the victim."""

from __future__ import annotations

import pytest

from magiclink_asgi import describe_device
from tests.asgi.harness import FIREFOX, IPHONE

from ._http import make_app
from ._links import open_landing, sign_up

pytestmark = pytest.mark.anyio

HOSTILE = [
    "Mozilla/5.0 (Secure your account at https://evil.example) EvilBrowser/1.0",
    "Mozilla/5.0 (compatible; Secure your account at evil.example/1.0; +https://evil.example)",
    "Secure your account at https://evil.example/2.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64) Secure-your-account-at-evil.example/120.0",
    "Mozilla/5.0 (Linux; Android 14; Secure your account at evil.example Build/X) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0) Chrome/99999999999 Safari/537.36",
]


def _clean(text: str) -> bool:
    lowered = text.lower()
    return "evil" not in lowered and "secure your account" not in lowered


@pytest.mark.parametrize("user_agent", HOSTILE)
async def test_hostile_user_agent_text_reaches_neither_email_nor_page(user_agent: str) -> None:
    app = make_app()
    async with app.browser(headers={"user-agent": user_agent}) as attacker:
        _, link = await sign_up(app, attacker, "victim@example.org")
    message = app.mailer.last_to("victim@example.org")
    assert message is not None
    assert _clean(message.text) and _clean(message.html or ""), message.text
    async with app.browser("192.0.2.44") as victim:
        page = await open_landing(victim, link)
        assert page.status_code == 200 and _clean(page.text)
    assert _clean(describe_device(user_agent))
    assert "99999" not in describe_device(user_agent)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (FIREFOX, "Firefox 120 on Ubuntu"),
        (IPHONE, "Safari 17 on iOS"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
            "Edge 120 on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome 120 on macOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
            "Samsung Internet 23 on Android",
        ),
        ("Mozilla/5.0 (Windows NT 10.0) EvilBrowser/1.0", "an unknown browser on Windows"),
        ("curl/8.0", ""),
        ("", ""),
    ],
)
def test_known_families_are_named_and_the_rest_is_unknown(user_agent: str, expected: str) -> None:
    assert describe_device(user_agent) == expected


async def test_a_device_nobody_can_name_is_an_unknown_device_in_the_email() -> None:
    app = make_app()
    async with app.browser(headers={"user-agent": "Secure your account at evil.example"}) as b:
        await sign_up(app, b, "victim@example.org")
    message = app.mailer.last_to("victim@example.org")
    assert message is not None and "an unknown device" in message.text
