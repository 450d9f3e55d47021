"""The public surface and the house plan's import rules."""

import ast
import subprocess
import sys
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


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # resolve relative imports inside magiclink_core
                parts = path.relative_to(SRC).with_suffix("").parts[: -node.level]
                module = ".".join([*parts, module]) if module else ".".join(parts)
            found.add(module)
    return found


def test_the_domain_is_pure() -> None:
    allowed_roots = set(sys.stdlib_module_names) | {"pydantic", "cryptography", "email_validator"}
    for path in (SRC / "magiclink_core" / "domain").rglob("*.py"):
        for module in _imports(path):
            root = module.split(".")[0]
            if root == "magiclink_core":
                assert module.startswith("magiclink_core.domain"), (path.name, module)
            else:
                assert root in allowed_roots, (path.name, module)
                assert root not in {"asyncio", "socket", "sqlite3", "threading"}, (
                    path.name,
                    module,
                )


def test_adapters_do_not_import_the_service_and_the_service_no_adapter() -> None:
    core = SRC / "magiclink_core"
    for folder in ("storage", "mailers", "emails"):
        for path in (core / folder).rglob("*.py"):
            assert "magiclink_core.service" not in _imports(path), path
    service_imports = _imports(core / "service.py")
    assert not any(
        m.startswith(("magiclink_core.mailers", "magiclink_core.storage")) for m in service_imports
    )


def test_the_core_never_imports_the_web_layer_or_a_framework() -> None:
    for path in (SRC / "magiclink_core").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("magiclink_asgi", "starlette", "fastapi", "quart")), path


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
