"""SQLite WAL checkpoints on a thread of their own, so the event loop never copies the log back."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("faregate.ledger")

# The writing connection still checkpoints by itself once the log holds this many pages (~64 MB
# at 4 KiB pages). Under steady traffic that is what lets the log start over at its beginning (a
# concurrent checkpoint always ends behind the newest commit, so the log never starts over on
# its own), but by then the thread has copied nearly every page, so the writer's own checkpoint
# is two syncs: about 2.5 ms of the event loop on the test machine (`bench/stalls.py`), twice a
# second at 1,000 requests a second with 4,000 pages, a stall every request in flight waits
# out. At 16,000 pages it comes four times less often. It is also the safety net if the thread
# falls behind or cannot run.
FALLBACK_PAGES = 16_000
# Commits between wake-ups: ~150 hold or settle commits append ~1,000 pages, SQLite's own
# default interval between checkpoints.
WAKE_COMMITS = 150
# The thread's niceness: the lowest priority. Where it shares a core with the event loop, a
# checkpoint (about 0.9 ms of CPU over 3 ms at 1,000 requests a second) then gives way the
# moment a request wakes the loop, instead of splitting the core with it while the request
# waits; it still gets its share when the loop is busy (`bench/stalls.py`, docs/benchmarks.md).
NICE = 19


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every `WAKE_COMMITS`
    commits of the writer, and at least every `interval` seconds.

    The writing connection's own automatic checkpoints are turned down to the fallback, so
    most commits only append to the log. SQLite releases the GIL while it copies pages and
    syncs the file, so this work fills the loop's idle time instead of stalling a request (a
    checkpoint inline with a commit cost 3-4 ms at p99). PASSIVE never blocks the writer."""

    def __init__(self, path: Path, *, interval: float = 0.5, busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._interval = interval
        self._busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._commits = 0
        self.runs = 0

    def committed(self) -> None:
        """Count one commit of the writer (on its thread); wake the checkpointer now and then."""
        self._commits += 1
        if self._commits >= WAKE_COMMITS:
            self._commits = 0
            self._wake.set()

    def start(self, writer: sqlite3.Connection) -> None:
        writer.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="faregate-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux: the default priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        except sqlite3.Error:  # the writer's fallback checkpoints keep the log bounded
            log.warning("cannot open the database to checkpoint it", exc_info=True)
            return
        try:
            while not self._stop.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.runs += 1
        except sqlite3.Error:  # a busy or vanished file: the next round (or the fallback) retries
            log.warning("WAL checkpoint failed", exc_info=True)
