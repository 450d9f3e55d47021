"""A link's URL carries its token, so a server's access log records it; anyone who reads the log
could use a pending link. TokenRedactingFilter keeps the token out of uvicorn's access log."""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magiclink_core import TokenRedactingFilter
from magiclink_core.domain.tokens import redact_tokens

from ..asgi.harness import serve
from ..support import token_in

pytestmark = pytest.mark.anyio


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _as_sent(link: str) -> str:
    return link


async def _click_a_link_under_uvicorn(
    access: logging.Logger, spelt: Callable[[str], str] = _as_sent
) -> str:
    """Serve an app under uvicorn with its access log on, open a real link (its URL as
    ``spelt`` writes it: a client may percent-encode any character); the link's token."""
    # log_config=None: uvicorn leaves the test's logger setup alone and logs request lines
    options = {"log_config": None, "access_log": True, "log_level": "info"}
    async with serve("starlette", uvicorn_options=options) as server, server.browser() as browser:
        await browser.start_sign_up("reader@example.com", server.base_url + "/")
        link = server.last_link("reader@example.com")
        answer = await browser.get(spelt(link))
        assert answer.status_code in (302, 303), answer.text
        assert (await browser.get("/auth/v1/me")).status_code == 200  # the link signed in
    assert access.handlers, "the access log was switched off"
    return token_in(link)


@pytest.fixture
def access_log() -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger("uvicorn.access")
    lines = Lines()
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    yield logger, lines
    logger.removeHandler(lines)
    logger.setLevel(old_level)
    for f in list(logger.filters):
        logger.removeFilter(f)


async def test_without_the_filter_the_access_log_holds_the_link_token(
    access_log: tuple[logging.Logger, Lines],
) -> None:
    logger, lines = access_log
    token = await _click_a_link_under_uvicorn(logger)
    assert any(token in line for line in lines.lines), lines.lines


async def test_with_the_filter_the_access_log_holds_no_token(
    access_log: tuple[logging.Logger, Lines],
) -> None:
    logger, lines = access_log
    logger.addFilter(TokenRedactingFilter())
    token = await _click_a_link_under_uvicorn(logger)
    verify = [line for line in lines.lines if "/auth/v1/verify" in line]
    assert verify, lines.lines
    assert all("token=mll1_[redacted]" in line for line in verify), verify
    assert not any(token[5:] in line for line in lines.lines)


def _underscore_as_5f(link: str) -> str:
    """``mll1_`` as ``mll1%5F``: the landing decodes the query, so the token still works."""
    return link.replace("mll1_", "mll1%5F")


def _every_character_encoded(link: str) -> str:
    """Every character of the token percent-encoded, in lowercase hex."""
    token = link.split("token=", 1)[1][:48]
    return link.replace(token, "".join(f"%{ord(c):02x}" for c in token))


@pytest.mark.parametrize("spelt", [_underscore_as_5f, _every_character_encoded])
async def test_with_the_filter_a_percent_encoded_token_is_redacted_too(
    access_log: tuple[logging.Logger, Lines], spelt: Callable[[str], str]
) -> None:
    logger, lines = access_log
    logger.addFilter(TokenRedactingFilter())
    token = await _click_a_link_under_uvicorn(logger, spelt)
    verify = [line for line in lines.lines if "/auth/v1/verify" in line]
    assert verify, lines.lines
    assert all("token=mll1_[redacted]" in line for line in verify), verify
    secret = token[5:]
    assert not any(secret in unquote(line) for line in lines.lines), lines.lines


_BODY = st.text(string.ascii_letters + string.digits + "-_", min_size=43, max_size=43)


def _encoded(character: str, times: int, lower: bool) -> str:
    """``character`` percent-encoded ``times`` times over: ``_``, ``%5F``, ``%255F``, ..."""
    if times == 0:
        return character
    once = f"%{ord(character):02x}" if lower else f"%{ord(character):02X}"
    return once.replace("%", "%" + "25" * (times - 1))  # each round quotes the "%" again


@given(
    purpose=st.sampled_from("lsc"),
    body=_BODY,
    times=st.lists(st.integers(min_value=0, max_value=3), min_size=48, max_size=48),
    lower=st.lists(st.booleans(), min_size=48, max_size=48),
)
def test_a_token_with_any_of_its_characters_percent_encoded_is_redacted(
    purpose: str, body: str, times: list[int], lower: list[bool]
) -> None:
    """Encoded once (the landing decodes the query, so the token works) or more (a proxy or a
    log that quotes the URL again: decoding the line as often gives the token back)."""
    token = f"ml{purpose}1_{body}"
    spelt = "".join(_encoded(c, n, low) for c, n, low in zip(token, times, lower, strict=True))
    line = f'127.0.0.1:5 - "GET /auth/v1/verify?token={spelt}&next=/a HTTP/1.1" 302'
    assert redact_tokens(line) == (
        f'127.0.0.1:5 - "GET /auth/v1/verify?token=ml{purpose}1_[redacted]&next=/a HTTP/1.1" 302'
    )


def test_every_kind_of_token_is_redacted_and_other_text_kept() -> None:
    body = "A" * 42 + "E"
    text = f"GET /x?token=mll1_{body}&next=/a s=mls1_{body} c=mlc1_{body} keep=mlq1_{body}"
    assert redact_tokens(text) == (
        f"GET /x?token=mll1_[redacted]&next=/a s=mls1_[redacted] c=mlc1_[redacted] keep=mlq1_{body}"
    )
