"""The codebase stays ruff- and mypy-clean: the test command enforces it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint() -> None:
    r = _run("ruff", "check", "--output-format", "concise", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    r = _run("ruff", "format", "--check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict() -> None:
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_module_has_a_docstring() -> None:
    missing = []
    for path in sorted((ROOT / "faregate").rglob("*.py")):
        text = path.read_text().lstrip()
        if not text.startswith('"""'):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, missing
