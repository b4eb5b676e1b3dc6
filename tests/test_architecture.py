"""The structure ARCHITECTURE.md promises, checked on every fast run: the import-linter layer
contracts in pyproject.toml (layers, Hydra at one edge, no cycles), and the size limits that
keep one concept per module readable."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "embedlab"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    command = str(exe) if exe.exists() else shutil.which("lint-imports")
    if command is None:
        pytest.fail("lint-imports is not installed: `make install` installs it (requirements/dev.txt)")
    done = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_only_the_edge_modules_read_hydra_configs() -> None:
    readers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n.split(".")[0] in ("hydra", "omegaconf") for n in names):
                readers.add(path.relative_to(SRC).as_posix())
    # cli.py: the console scripts, the installed twins of train.py and evaluate.py
    assert readers == {"cli.py", "config/specs.py", "jobs.py", "report/hydra_callback.py"}


def test_files_and_functions_stay_small() -> None:
    too_long: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(SRC).as_posix()
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {n} lines")
    assert not too_long, "split these (limits: ARCHITECTURE.md):\n" + "\n".join(too_long)
