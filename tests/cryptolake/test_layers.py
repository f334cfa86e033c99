"""The contracts package is the bottom layer: no module of cryptolake/ imports a package above it.

Checked twice: by walking every module's syntax tree (module level, inside functions, under
``TYPE_CHECKING``, and ``importlib.import_module("...")`` with a literal name), and by running the
import-linter contract of pyproject.toml over the whole project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cryptolake

ROOT = Path(__file__).resolve().parents[2]
ABOVE_CONTRACTS = frozenset(
    {"cli", "api", "dags", "pipeline", "research", "trader", "ingest", "spark_jobs", "models", "infra"}
)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``source``, wherever it sits."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in {"import_module", "__import__"}):
            found.append((node.lineno, node.args[0].value))
    return found


def upward_imports(source: str) -> list[tuple[int, str]]:
    """The imports of ``source`` that name a package above the contracts."""
    return [(line, name) for line, name in imported_modules(source) if name.split(".")[0] in ABOVE_CONTRACTS]


def test_the_walker_finds_imports_at_every_level() -> None:
    source = '''  # SYNTHETIC module: one upward import of each kind, and some that are allowed
from __future__ import annotations
import json
from typing import TYPE_CHECKING
from cryptolake.settings import Settings
import infra.broker
if TYPE_CHECKING:
    from trader.config import TraderSettings
def f() -> None:
    from spark_jobs.session import get_spark
    import importlib
    importlib.import_module("models.lstm")
class C:
    def g(self) -> None:
        from . import topics
        import cli.main as m
        __import__("pipeline")
'''
    assert upward_imports(source) == [
        (6, "infra.broker"), (8, "trader.config"), (10, "spark_jobs.session"), (12, "models.lstm"),
        (16, "cli.main"), (17, "pipeline"),
    ]


def test_no_module_of_cryptolake_imports_a_package_above_it() -> None:
    package = Path(cryptolake.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert len(modules) >= 10 and not (package / "cli").exists()
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in modules for line, name in upward_imports(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_import_linter_contract_is_kept() -> None:
    import subprocess
    import sys

    # In a subprocess: import-linter in-process reconfigures logging for the rest of the session.
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 broken" in proc.stdout and "KEPT" in proc.stdout
