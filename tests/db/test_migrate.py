"""Migrations: processes starting at once on a fresh SQLite file take turns, so all come up."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from faregate.db import migrate

# Each process waits for the go file, then migrates: they all start on the empty file together.
SCRIPT = """
import asyncio, os, sys, time
from faregate.db import migrate
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
asyncio.run(migrate.upgrade(sys.argv[1]))
"""


def test_processes_migrating_one_fresh_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, f"sqlite:///{database}", str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(1.5)  # let every interpreter import and reach the wait loop
    go.touch()
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(errors)
    with sqlite3.connect(database) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(versions) == 1
    assert migrate.lock_path(database).exists()
