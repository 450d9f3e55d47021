"""axe-core, the accessibility engine, run inside a page Chromium shows.

The engine is one script, ``axe.min.js``. It comes from the PyPI package
``axe-playwright-python`` (in the ``test`` extra), which ships it; ``MAGICLINK_AXE_JS`` may name
another copy (say, ``node_modules/axe-core/axe.min.js`` of the npm package ``axe-core``). Where
neither is found the tests skip, saying so, unless ``MAGICLINK_REQUIRE_SERVICES=1`` (CI), where
they fail.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.support import REQUIRE_SERVICES

INSTALL_HINT = (
    "pip install axe-playwright-python (in the test extra), or set MAGICLINK_AXE_JS to an "
    "axe.min.js (npm install axe-core)"
)


@cache
def _axe_source() -> str | None:
    named = os.environ.get("MAGICLINK_AXE_JS")
    if named:
        path = Path(named)
        return path.read_text() if path.is_file() else None
    try:
        script = resources.files("axe_playwright_python") / "axe.min.js"
    except ModuleNotFoundError:
        return None
    return script.read_text() if script.is_file() else None


def require_axe() -> str:
    """The axe-core script, or a skip (a failure where services are required) naming how to
    install it."""
    source = _axe_source()
    if source is not None:
        return source
    where = os.environ.get("MAGICLINK_AXE_JS") or "the axe-playwright-python package"
    message = f"axe-core is not available (looked in {where}): {INSTALL_HINT}"
    if REQUIRE_SERVICES or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


_RUN = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
  }));
}"""


def violations(page: Any) -> list[str]:
    """Every axe-core violation on the page as it is now (every rule axe runs by default: WCAG
    2.x A and AA, and its best practices), one readable line per element."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(require_axe())
    found: list[dict[str, Any]] = page.evaluate(_RUN)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {n['target']}: {n['summary']}"
        for v in found
        for n in v["nodes"]
    ]
