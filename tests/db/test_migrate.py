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


def test_head_read_from_the_version_files_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).parent.parent / "migrations"))
    assert migrate.head() == ScriptDirectory.from_config(cfg).get_current_head()


# Migrates in a forked child (or, with "again", finds the schema current), then reports the
# revision and whether this process ever loaded Alembic.
APART = """
import asyncio, sqlite3, sys
from faregate.db import migrate
if sys.argv[2] == "apart":
    print(migrate.upgrade_apart(sys.argv[1]))
else:
    asyncio.run(migrate.upgrade(sys.argv[1]))
    print(True)
db = sys.argv[1].removeprefix("sqlite:///")
print(sqlite3.connect(db).execute("SELECT version_num FROM alembic_version").fetchone()[0])
print("alembic" in sys.modules)
"""


def _apart(url: str, how: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", APART, url, how], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_fresh_database_is_migrated_in_a_child_and_the_server_never_loads_alembic(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert _apart(url, "apart") == ["True", migrate.head(), "False"]
    # A process finding the schema current answers from one query, without Alembic.
    assert _apart(url, "again") == ["True", migrate.head(), "False"]


def test_a_failed_child_migration_leaves_the_work_to_the_server(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the database's folder should be")
    url = f"sqlite:///{tmp_path / 'not-a-folder' / 'x.db'}"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from faregate.db import migrate;"
            " print(migrate.upgrade_apart(sys.argv[1]))",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
