"""The house plan's import rules (docs/architecture.md), read from the source with ``ast``.

Each rule is one test; a failure names the file and the import that breaks it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = SRC / "magiclink_core"

# the modules that call the ports in order (the service); adapters never import them
SERVICE = {
    "magiclink_core.service",
    "magiclink_core.context",
    "magiclink_core.clients",
    "magiclink_core.links",
    "magiclink_core.sign_ups",
    "magiclink_core.sign_ins",
    "magiclink_core.email_addresses",
    "magiclink_core.sessions",
    "magiclink_core.session_cache",
    "magiclink_core.attempt_waits",
    "magiclink_core.waiting",
    "magiclink_core.hooks",
    "magiclink_core.account",
    "magiclink_core.email_codes",
    "magiclink_core.delivery",
    "magiclink_core.throttle",
    "magiclink_core.link_guard",
    "magiclink_core.notices",
    "magiclink_core.budgets",
    "magiclink_core.port_checks",
}
# adapters of one backend, and the private modules only that backend uses
FAMILIES = {
    "memory": {"memory"},
    "sqlite": {"sqlite", "sqlite_notifier"},
    "postgres": {"postgres", "postgres_notifier", "_asyncpg", "_pg_connections"},
    "redis": {"redis", "redis_notifier", "_redis_client"},
}
# what any adapter may share (neutral helpers, not adapters)
SHARED_STORAGE = {"_connections", "_extras", "_records", "_settle", "_sql"}


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = SRC) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), at any depth of the file."""
    found: set[str] = set()
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
                # `from . import x` names modules
                if not node.module:
                    found |= {f"{base}.{alias.name}" for alias in node.names}
                    continue
            found.add(base)
    return found


def sources(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_the_domain_imports_only_the_standard_library_and_three_libraries() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "cryptography", "email_validator"}
    for path in sources(CORE / "domain"):
        for module in imports_of(path):
            root = module.split(".")[0]
            if root == "magiclink_core":
                assert module.startswith("magiclink_core.domain"), (path.name, module)
            else:
                assert root in allowed, (path.name, module)
                assert root not in {"asyncio", "socket", "sqlite3", "threading"}, (
                    path.name,
                    module,
                )


def test_the_service_imports_no_adapter() -> None:
    for name in SERVICE:
        path = SRC / (name.replace(".", "/") + ".py")
        for module in imports_of(path):
            assert not module.startswith(("magiclink_core.storage", "magiclink_core.mailers")), (
                path.name,
                module,
            )


@pytest.mark.parametrize("folder", ["storage", "mailers", "emails"])
def test_adapters_and_templates_never_import_the_service(folder: str) -> None:
    for path in sources(CORE / folder):
        for module in imports_of(path):
            assert module not in SERVICE, (path.name, module)


def test_an_adapter_imports_no_other_adapter() -> None:
    family_of = {member: family for family, members in FAMILIES.items() for member in members}
    for path in sources(CORE / "storage"):
        own = path.stem
        if own in {"__init__", "urls"} or own in SHARED_STORAGE:
            continue  # the package's lazy exports and the URL factory name every adapter
        for module in imports_of(path):
            if not module.startswith("magiclink_core.storage."):
                continue
            other = module.rsplit(".", 1)[1]
            assert other in SHARED_STORAGE or family_of.get(other) == family_of.get(own), (
                path.name,
                module,
            )
    for path in sources(CORE / "mailers"):
        for module in imports_of(path):
            assert not module.startswith("magiclink_core.storage"), (path.name, module)


def test_the_core_never_imports_the_web_layer_or_a_framework() -> None:
    for path in sources(CORE):
        for module in imports_of(path):
            assert not module.startswith(
                ("magiclink_asgi", "starlette", "fastapi", "quart", "litestar")
            ), (path.name, module)


def test_the_web_layer_uses_only_the_cores_public_surface() -> None:
    public = {"magiclink_core", "magiclink_core.storage", "magiclink_core.mailers"}
    for path in sources(SRC / "magiclink_asgi"):
        for module in imports_of(path):
            if module.startswith("magiclink_core"):
                assert module in public, (path.name, module)


def test_nothing_ships_that_imports_tests_or_benchmarks() -> None:
    for path in sources(SRC):
        for module in imports_of(path):
            assert module.split(".")[0] not in {"tests", "benchmarks"}, (path.name, module)


def test_the_reader_resolves_the_imports_a_breach_would_use(tmp_path: Path) -> None:
    """Relative, nested and ``from . import`` imports are resolved, or the rules above would
    pass vacuously."""
    evil = tmp_path / "magiclink_core" / "storage" / "evil.py"
    evil.parent.mkdir(parents=True)
    evil.write_text(
        "from .redis import RedisStorage\n"
        "from . import memory\n"
        "def f():\n    from ..service import MagicLinks\n    import magiclink_asgi.api\n"
    )
    assert imports_of(evil, tmp_path) >= {
        "magiclink_core.storage.redis",
        "magiclink_core.storage.memory",
        "magiclink_core.service",
        "magiclink_asgi.api",
    }
