"""The public surface: what `magiclink_core` exports, and what importing it costs."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FunctionType, ModuleType

import magiclink_core

SRC = Path(__file__).resolve().parents[2] / "src"


def test_all_matches_the_namespace() -> None:
    public = {
        name
        for name, value in vars(magiclink_core).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert set(magiclink_core.__all__) == public
    for name in magiclink_core.__all__:
        value = getattr(magiclink_core, name)
        if isinstance(value, type | FunctionType):  # classes and functions say where they live
            assert value.__module__ == "magiclink_core", name


def test_importing_the_core_loads_no_optional_driver() -> None:
    code = (
        "import sys, magiclink_core, magiclink_core.storage, magiclink_core.mailers;"
        "print(sorted(m for m in ('asyncpg','redis','aiosqlite','aiosmtplib','uvicorn')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_state_diagrams_in_the_docs_match_the_tables() -> None:
    script = SRC.parent / "docs" / "make_state_diagrams.py"
    done = subprocess.run([sys.executable, str(script), "--check"], check=False)
    assert done.returncode == 0, "run: python docs/make_state_diagrams.py"


def test_the_system_clock_reads_the_current_time_in_utc() -> None:
    clock = magiclink_core.SystemClock()
    before = datetime.now(UTC)
    read = clock.now()
    after = datetime.now(UTC)
    assert read.utcoffset() == timedelta(0)
    assert before <= read <= after
    assert clock.now() >= read  # each read is the time now, not one fixed at construction
