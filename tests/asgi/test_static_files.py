"""The browser client as served: one module assembled from the parts in ``static/magiclink/``
in manifest order, the only route for them, versioned by its content, and a module that loads
and exports what the docs import from it.

The module is checked with node (``node --check``, then loaded), which must be on PATH where
services are required (CI); elsewhere those tests skip, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from magiclink_asgi import static_files
from magiclink_asgi.pages import HostedPages
from magiclink_asgi.static_files import (
    CLIENT_MODULE,
    CLIENT_PARTS,
    CLIENT_PARTS_FOLDER,
    assemble_client,
    load_static_files,
)
from tests.asgi.test_pages import client, make_links
from tests.support import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
STATIC = Path(str(resources.files("magiclink_asgi") / "static"))
PARTS = STATIC / CLIENT_PARTS_FOLDER

# The module's exports: the guide's custom-flow names, the resources and the default export.
EXPORTS = {
    "APIError",
    "Client",
    "EmailAddress",
    "MagicLink",
    "MagicLinkError",
    "MagicLinkErrorCode",
    "NetworkError",
    "Session",
    "SignIn",
    "SignUp",
    "User",
    "Verification",
    "createClient",
    "default",
    "isMagicLinkError",
    "sharedClient",
    "useMagicLink",
}
# Where apps are shown importing from the module: the docs, the README, the demo's examples.
DOCUMENTED = [ROOT / "docs" / "pages.md", ROOT / "README.md", ROOT / "src/magiclink_asgi/demo.py"]
IMPORT = re.compile(r"import\s*\{([^}]*)\}\s*from\s*[\"'][^\"']*/static/magiclink\.js[\"']")


def test_every_part_is_in_the_manifest_exactly_once() -> None:
    on_disk = sorted(p.name for p in PARTS.iterdir() if p.name != "__pycache__")
    assert sorted(CLIENT_PARTS) == on_disk
    assert len(set(CLIENT_PARTS)) == len(CLIENT_PARTS)


def test_the_assembly_is_the_parts_in_manifest_order_the_same_on_every_load() -> None:
    expected = b"\n".join((PARTS / name).read_bytes() for name in CLIENT_PARTS)
    assert assemble_client() == expected
    assert load_static_files()[CLIENT_MODULE].body == expected
    assert load_static_files()[CLIENT_MODULE].etag == load_static_files()[CLIENT_MODULE].etag


@pytest.mark.anyio
async def test_the_served_module_is_the_assembly_versioned_by_its_content() -> None:
    pages = HostedPages(make_links())
    assembly = assemble_client()
    digest = hashlib.sha256(assembly).hexdigest()[:16]
    async with client(pages) as c:
        served = await c.get("/auth/static/magiclink.js")
        versioned = await c.get(pages.static_url("magiclink.js"))
    assert served.content == assembly
    assert served.headers["etag"] == f'"{digest}"'
    assert pages.static_url("magiclink.js") == f"/auth/static/magiclink.js?v={digest}"
    assert versioned.content == assembly
    assert "immutable" in versioned.headers["cache-control"]
    # a second app (or a restart) serves the same bytes under the same version
    assert HostedPages(make_links()).static_url("magiclink.js") == pages.static_url("magiclink.js")


@pytest.mark.anyio
@pytest.mark.parametrize("name", CLIENT_PARTS)
async def test_a_part_is_never_served_alone(name: str) -> None:
    pages = HostedPages(make_links())
    async with client(pages) as c:
        for path in (
            f"/auth/static/{CLIENT_PARTS_FOLDER}/{name}",
            f"/auth/static/{name}",
            f"/auth/static/{CLIENT_PARTS_FOLDER}",
        ):
            r = await c.get(path)
            assert r.status_code == 404, path
    assert not any("/" in route or route in CLIENT_PARTS for route in pages.static)


def _copy_of_static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(static_files, "_static_root", lambda: copy)
    return copy


def test_a_file_shadowing_the_assembled_module_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy_of_static(tmp_path, monkeypatch)
    (copy / "magiclink.js").write_text("export const stale = true;\n")
    with pytest.raises(RuntimeError, match=r"static/magiclink\.js would shadow"):
        load_static_files()


def test_a_missing_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = _copy_of_static(tmp_path, monkeypatch)
    (copy / CLIENT_PARTS_FOLDER / CLIENT_PARTS[1]).unlink()
    with pytest.raises(RuntimeError, match=f"{CLIENT_PARTS[1]} is listed in CLIENT_PARTS"):
        load_static_files()


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        message = "node is not on PATH; it checks that the assembled magiclink.js loads"
        if os.environ.get("CI") or REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "magiclink.mjs"  # .mjs: node reads it as an ES module
    path.write_bytes(assemble_client())
    return path


def _node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_the_assembled_module_parses_as_an_es_module(node: str, module_file: Path) -> None:
    result = _node(node, "--check", str(module_file))
    assert result.returncode == 0, result.stderr


# Loading runs every part's top-level code in order, which fails on a part placed before one it
# needs (a class extending a later class, a constant read before it is declared). Node has no
# DOM: an empty HTMLElement lets the element classes be declared; nothing else is stood in for.
_LOAD = """
globalThis.HTMLElement = class {};
const m = await import(process.argv[1]);
console.log(JSON.stringify({
  names: Object.keys(m),
  defaultIsMagicLink: m.default === m.MagicLink,
  codes: m.MagicLinkErrorCode,
}));
"""


def test_the_assembled_module_loads_and_exports_what_the_docs_import(
    node: str, module_file: Path
) -> None:
    result = _node(node, "--input-type=module", "-e", _LOAD, module_file.as_uri())
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert set(loaded["names"]) == EXPORTS
    assert loaded["defaultIsMagicLink"]
    assert loaded["codes"] == {
        "Expired": "expired",
        "Failed": "failed",
        "ClientMismatch": "client_mismatch",
    }
    documented: set[str] = set()
    for path in DOCUMENTED:
        for names in IMPORT.findall(path.read_text()):
            documented.update(n.split(" as ")[0].strip() for n in names.split(",") if n.strip())
    assert {"MagicLink", "useMagicLink", "isMagicLinkError", "MagicLinkErrorCode"} <= documented
    assert documented <= EXPORTS
