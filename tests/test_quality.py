"""The codebase stays ruff- and mypy-clean: the test command enforces it, on the files git
tracks (an untracked scratch file is nobody's build)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_python(root: Path) -> list[str]:
    """The Python files git tracks under `root` (every one when `root` is no git checkout)."""
    try:
        r = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.py"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:  # no git on this machine
        r = None
    if r is None or r.returncode != 0:
        return sorted(
            str(p.relative_to(root)) for p in root.rglob("*.py") if ".venv" not in p.parts
        )
    # A set: during a merge, a conflicted file is listed once per stage.
    return sorted({name for name in r.stdout.split("\0") if name and (root / name).exists()})


FILES = tracked_python(ROOT)
PACKAGE = [f for f in FILES if f.startswith("faregate/")]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_only_tracked_files_are_checked(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    (tmp_path / "kept.py").write_text('"""Kept."""\n')
    (tmp_path / "scratch.py").write_text("import os,sys\n")
    subprocess.run(["git", "add", "kept.py"], cwd=tmp_path, check=True, timeout=60)
    assert tracked_python(tmp_path) == ["kept.py"]
    assert "faregate/app.py" in PACKAGE and "tests/test_quality.py" in FILES


def test_ruff_lint() -> None:
    r = _run("ruff", "check", "--output-format", "concise", *FILES)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    r = _run("ruff", "format", "--check", *FILES)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict() -> None:
    r = _run("mypy", *PACKAGE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_module_has_a_docstring() -> None:
    missing = []
    for name in PACKAGE:
        text = (ROOT / name).read_text().lstrip()
        if not text.startswith('"""'):
            missing.append(name)
    assert not missing, missing
