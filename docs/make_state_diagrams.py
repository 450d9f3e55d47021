"""Draws docs/state-machines.md from the transition tables in magiclink_core.domain.flows.

python docs/make_state_diagrams.py          # rewrite the file
python docs/make_state_diagrams.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from magiclink_core.domain import flows

OUT = Path(__file__).with_name("state-machines.md")
TABLES: list[tuple[str, Mapping[Any, frozenset[Any]]]] = [
    ("Verification (of a sign-up, a sign-in or an email address)", flows.VERIFICATION_TRANSITIONS),
    ("Sign-up", flows.SIGN_UP_TRANSITIONS),
    ("Sign-in", flows.SIGN_IN_TRANSITIONS),
    ("Session", flows.SESSION_TRANSITIONS),
]


def render() -> str:
    parts = [
        "# State machines\n",
        "Drawn from the transition tables in `magiclink_core/domain/flows.py` by",
        "`docs/make_state_diagrams.py`; a test keeps this file in step with the code.",
        "Any transition not drawn here raises `InvalidStateError` and changes nothing.\n",
    ]
    for title, table in TABLES:
        parts.append(f"## {title}\n\n```mermaid\nstateDiagram-v2")
        first = next(iter(table))
        parts.append(f"    [*] --> {first.value}")
        for old, news in table.items():
            for new in sorted(news, key=lambda s: s.value):
                cause = flows.TRANSITION_CAUSES.get((old, new))
                label = f": {cause}" if cause else ""
                parts.append(f"    {old.value} --> {new.value}{label}")
            if not news:
                parts.append(f"    {old.value} --> [*]")
        parts.append("```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
