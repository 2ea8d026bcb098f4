"""The README's test command in a clone without ../shared beside it: the tests that need the
OpenAI spec skip and say where they looked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_spec_tests_skip_with_a_reason_when_the_spec_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "specs" / "openai-openapi.yaml"
    env = {**os.environ, "FAREGATE_TEST_OPENAI_SPEC": str(missing)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_openapi_shapes.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" not in r.stdout and " skipped" in r.stdout, r.stdout
    assert f"the OpenAI spec is not at {missing}" in r.stdout, r.stdout
