"""Every Python block of the README runs as written, so the README cannot drift from the code.

Blocks are run in a fresh interpreter (the quick start), or executed and then used (the app:
its lifespan runs and its routes answer). A ``print(...)  # expected`` line must print that.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def block(marker: str) -> str:
    (found,) = [b for b in BLOCKS if marker in b]
    return found


def expected_prints(code: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*\)\s+#\s*(.+)$", code, re.M)]


def test_the_readme_has_the_blocks_this_file_runs() -> None:
    assert len(BLOCKS) == 3, "a Python block was added to the README: run it here too"


def test_the_quick_start_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    code = block("asyncio.run(main())")
    script = tmp_path / "quick_start.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == expected_prints(code)


@pytest.mark.anyio
async def test_the_app_example_starts_serves_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAGICLINK_SECRET", "s" * 48)
    monkeypatch.setenv("SMTP_PASSWORD", "not used: no email is sent here")
    namespace: dict[str, Any] = {"__name__": "readme_app"}
    exec(compile(block("MagicLinkMiddleware"), "README.md", "exec"), namespace)
    app = namespace["app"]
    async with lifespan_of(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://app.example.com"
        ) as browser:
            home = await browser.get("/")
            assert home.status_code == 303
            assert home.headers["location"].startswith("/auth/sign-in")
            assert (await browser.get("/my-data")).status_code == 403  # @requires
            assert (await browser.get("/auth/v1/client")).status_code == 200
    assert (tmp_path / "magiclink.sqlite3").exists()


@asynccontextmanager
async def lifespan_of(app: Any) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan around the block, as a server does."""
    to_app: list[dict[str, str]] = [{"type": "lifespan.startup"}]
    wake = anyio.Event()
    said: list[str] = []
    started, stopped = anyio.Event(), anyio.Event()

    async def receive() -> dict[str, str]:
        while not to_app:
            await wake.wait()
        return to_app.pop(0)

    async def send(message: dict[str, str]) -> None:
        said.append(message["type"])
        if message["type"].startswith("lifespan.startup."):
            started.set()
        if message["type"].startswith("lifespan.shutdown."):
            stopped.set()

    async with anyio.create_task_group() as group:
        group.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        await started.wait()
        assert said == ["lifespan.startup.complete"], said
        yield
        to_app.append({"type": "lifespan.shutdown"})
        wake.set()
        with anyio.fail_after(10):
            await stopped.wait()
        assert said[-1] == "lifespan.shutdown.complete", said


def test_the_adapter_contract_example_defines_a_suite() -> None:
    namespace: dict[str, Any] = {"__name__": "readme_contract"}
    exec(compile(block("StorageContract"), "README.md", "exec"), namespace)
    from magiclink_core.testing import StorageContract

    assert issubclass(namespace["TestMyStorage"], StorageContract)


def test_the_demo_and_test_commands_are_at_the_top() -> None:
    head = README.read_text().split("## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", head, re.S)
    assert any("magiclink demo" in c for c in commands)
    assert any("-m pytest" in c and "'.[test]'" in c for c in commands)
    for variable in (
        "MAGICLINK_TEST_POSTGRES_DSN",
        "MAGICLINK_TEST_REDIS_URL",
        "MAGICLINK_CHROMIUM",
    ):
        assert variable in head, f"say next to the test command where {variable} points"
