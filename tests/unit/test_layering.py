"""The architecture holds: import-linter's contracts, and exactly one importer per I/O library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("fleetd/**/*.py"), *ROOT.glob("fleetctl/**/*.py")])

# I/O library -> the modules allowed to import it (one per program: daemon and CLI).
OWNERS = {
    "aetcd": {"fleetd/registry/etcd.py"},
    "grpc": {"fleetd/registry/etcd.py"},
    "dbus_next": {"fleetd/systemd/dbus.py"},
    "aiohttp": {"fleetd/api/http.py", "fleetctl/client.py"},
    "structlog": {"fleetd/logs.py"},
    "prometheus_client": {"fleetd/metrics.py"},
    "resource": {"fleetd/limits.py"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_io_library_has_one_importer(library: str) -> None:
    importers = {str(p.relative_to(ROOT)) for p in SOURCES if library in imported_roots(p)}
    assert importers <= OWNERS[library], f"{library} imported outside its adapter: {importers}"


def test_every_module_says_what_it_owns() -> None:
    missing = [str(p.relative_to(ROOT)) for p in SOURCES
               if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run([sys.executable, "-m", "importlinter.cli", "--config",
                             str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    if "No module named importlinter.cli" in result.stderr:
        result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                                capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_modules_have_unique_basenames() -> None:
    """pytest imports test modules by basename (rootdir-relative, no packages): two files with
    the same name in different tiers break collection of the whole suite."""
    names = [p.name for p in (ROOT / "tests").glob("*/test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
