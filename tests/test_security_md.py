"""SECURITY.md names the test that proves each defence: every test file and test it names must
exist, so the page cannot promise a proof that was renamed or removed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `security/test_x.py`, `core/test_x.py::test_y`, `src/.../contract.py::test_y`, `::test_z`
_REFERENCE = re.compile(r"`((?:src/[\w/]+|[\w/]+/test_\w+|testing/\w+)\.py)?(?:::(\w+))?`")


def _names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def _resolve(file: str) -> Path:
    if file.startswith("src/"):
        return ROOT / file
    if file.startswith("testing/"):
        return ROOT / "src" / "magiclink_core" / file
    return ROOT / "tests" / file


def test_every_test_security_md_names_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    checked = 0
    missing: list[str] = []
    current: Path | None = None
    for match in _REFERENCE.finditer(text):
        file, test = match.groups()
        if file is None and test is None:
            continue
        if file is not None:
            current = _resolve(file)
            if not current.is_file():
                missing.append(file)
                continue
        if test is not None:
            assert current is not None, f"::{test} names no file before it"
            if test not in _names_in(current):
                missing.append(f"{current.relative_to(ROOT)}::{test}")
        checked += 1
    assert checked > 40
    assert not missing, missing
