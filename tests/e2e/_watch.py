"""What a page logs that a person never sees but a developer does: console errors, uncaught
exceptions, requests that failed or were answered with an error status. The hosted pages must
leave the console clean."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Console:
    """Listens to one page. ``expected`` holds ``(url, status)`` answers that are the point of
    the page (a not-found page's own 404), which Chromium also logs as a console error."""

    page: Any
    expected: set[tuple[str, int]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def expect(self, url: str, status: int) -> None:
        self.expected.add((url, status))

    def _console(self, message: Any) -> None:
        if message.type not in ("error", "assert"):
            return
        url = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and any(
            url == expected_url and f"status of {status}" in message.text
            for expected_url, status in self.expected
        ):
            return
        self.problems.append(f"console.{message.type}: {message.text} ({url or 'no url'})")

    def _failed(self, request: Any) -> None:
        self.problems.append(f"failed: {request.method} {request.url} ({request.failure})")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and (response.url, response.status) not in self.expected:
            self.problems.append(f"{response.status}: {response.request.method} {response.url}")

    def settle(self) -> list[str]:
        """The problems once the page has gone quiet (no request for half a second)."""
        self.page.wait_for_load_state("networkidle")
        return list(self.problems)
