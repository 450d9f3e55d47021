"""A link's URL carries its token, so a server's access log records it; anyone who reads the log
could use a pending link. TokenRedactingFilter keeps the token out of uvicorn's access log."""

from __future__ import annotations

import logging

import pytest

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


async def _click_a_link_under_uvicorn(access: logging.Logger) -> str:
    """Serve an app under uvicorn with its access log on, open a real link; the link's token."""
    # log_config=None: uvicorn leaves the test's logger setup alone and logs request lines
    options = {"log_config": None, "access_log": True, "log_level": "info"}
    async with serve("starlette", uvicorn_options=options) as server, server.browser() as browser:
        await browser.start_sign_up("reader@example.com", server.base_url + "/")
        link = server.last_link("reader@example.com")
        answer = await browser.get(link)
        assert answer.status_code in (302, 303), answer.text
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


def test_every_kind_of_token_is_redacted_and_other_text_kept() -> None:
    body = "A" * 42 + "E"
    text = f"GET /x?token=mll1_{body}&next=/a s=mls1_{body} c=mlc1_{body} keep=mlq1_{body}"
    assert redact_tokens(text) == (
        f"GET /x?token=mll1_[redacted]&next=/a s=mls1_[redacted] c=mlc1_[redacted] keep=mlq1_{body}"
    )
