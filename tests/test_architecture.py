"""The package's layers hold: each pipeline stage imports only the stages below it, no
import cycles, and no import hidden inside a function except the documented deferred ones.

The contracts live in pyproject.toml ([tool.importlinter]) and are checked with
import-linter, so `lint-imports` in a shell says the same as this test.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_layer_and_cycle_contracts_hold():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    """The contract is not vacuous: the catalog importing the report layer is caught."""
    shutil.copytree(ROOT / "loadgen", tmp_path / "loadgen", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    models = tmp_path / "loadgen" / "catalog" / "models.py"
    models.write_text(models.read_text() + "\nimport loadgen.report  # a wrong arrow\n")
    r = _lint(tmp_path, pythonpath=tmp_path)
    assert r.returncode != 0
    assert "loadgen.catalog is not allowed to import loadgen.report" in r.stdout, r.stdout


def _function_level_imports() -> list[str]:
    found = set()
    for path in sorted((ROOT / "loadgen").rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)) and "# deferred:" not in lines[sub.lineno - 1]:
                    found.add(f"{path.relative_to(ROOT)}:{sub.lineno}: {lines[sub.lineno - 1].strip()}")
    return sorted(found)


def test_imports_inside_functions_are_only_the_deferred_ones():
    """An import inside a function hides a dependency (and often a cycle) from the reader
    and from the contracts above; the only ones allowed say why on their line
    (`# deferred: ...`): matplotlib, and the CLI loading only the command it runs."""
    assert _function_level_imports() == []


def test_a_module_over_400_lines_says_why():
    """One idea per file: a module past ~400 lines is split, or its docstring says why not
    (a sentence naming the 400 lines)."""
    long_ = []
    for path in sorted((ROOT / "loadgen").rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        if src.count("\n") > 400 and "400 lines" not in (ast.get_docstring(ast.parse(src)) or ""):
            long_.append(f"{path.relative_to(ROOT)}: {src.count(chr(10))} lines")
    assert long_ == []
