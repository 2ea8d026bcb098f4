"""bench/phases.py's stamps (bench/phase_hook.py) and its report of the gateway's steps."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# Loaded from its file: putting bench/ on sys.path would shadow test packages (bench/usage.py).
_spec = importlib.util.spec_from_file_location("phase_hook", BENCH / "phase_hook.py")
assert _spec is not None and _spec.loader is not None
hook = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hook)


@pytest.fixture
def stamping() -> Iterator[list[dict[str, int]]]:
    hook._begin(0, None)
    yield hook._records
    hook._on[0] = False
    hook._records.clear()
    hook._current[0] = None


def test_every_wrapped_name_is_still_in_the_gateway() -> None:
    for module_name, attribute in hook.DETAIL_TARGETS:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            assert hasattr(obj, part), f"{module_name}.{attribute} is gone: update phase_hook.py"
            obj = getattr(obj, part)
        assert callable(obj)


def test_the_steps_name_each_stamp_once_and_hold_the_base_phases_in_order() -> None:
    stamps = [stamp for stamp, _ in hook.STEPS]
    assert len(stamps) == len(set(stamps))
    base = [s for s in stamps if s in ("in", "up_out", "up_in", "out")]
    assert base == ["in", "up_out", "up_in", "out"]


async def test_stamps_keep_the_first_time_and_a_new_request_starts_after_out(
    stamping: list[dict[str, int]],
) -> None:
    async def work(x: int) -> int:
        hook._mark("inside")
        return x + 1

    wrapped = hook._around(work, "before", "after")
    hook._start("in")
    assert await wrapped(1) == 2
    await wrapped(2)  # a second call keeps the first call's stamps
    first = dict(stamping[0])
    assert first["in"] <= first["before"] <= first["inside"] <= first["after"]
    hook._mark_early("early")
    hook._mark("out")
    hook._mark_early("late")  # after the first bytes went out: not stamped
    hook._start("in")
    assert len(stamping) == 2
    assert "early" in stamping[0] and "late" not in stamping[0]
    assert stamping[0]["before"] == first["before"]


def test_nothing_is_stamped_outside_the_window(stamping: list[dict[str, int]]) -> None:
    hook._on[0] = False
    hook._start("in")
    hook._mark("out")
    assert stamping == []


def test_the_sqlite_wrapper_stamps_only_a_commit_that_is_open(
    stamping: list[dict[str, int]],
) -> None:
    calls: list[str] = []

    class Store:
        _open: object | None = None

        def finish_open(self) -> None:
            calls.append("finish")

    module = SimpleNamespace(SqliteStore=Store, run_sqlite=lambda conn, plan: plan)
    hook._sqlite(module)
    hook._start("in")
    store = Store()
    store.finish_open()
    assert "commit0" not in stamping[0]
    store._open = object()
    store.finish_open()
    assert calls == ["finish", "finish"]
    assert stamping[0]["commit0"] <= stamping[0]["commit1"]
    assert module.run_sqlite(None, "plan") == "plan"
    assert stamping[0]["sql0"] <= stamping[0]["sql1"]


@pytest.fixture
def phases(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module("phases")
    yield module
    for name in set(sys.modules) - before:  # bench's modules leave with it
        del sys.modules[name]


def test_the_steps_report_measures_each_step_from_the_stamp_before_it(
    phases: ModuleType,
) -> None:
    stream = {"in": 0, "app": 30_000, "up_out": 100_000, "up_in": 400_000, "feed": 450_000}
    stream["out"] = 480_000
    json_reply = {"in": 0, "app": 40_000, "up_out": 120_000, "up_in": 420_000, "out": 470_000}
    text = phases.steps_report([stream, json_reply])
    rows = {line.split(" | ")[1]: line for line in text.splitlines()[2:]}
    assert rows["app"].endswith("| 2 | 40.0 | 40.0 | 40.0 |")  # both requests, in µs
    assert rows["feed"].endswith("| 1 | 50.0 | 50.0 | 50.0 |")  # the stream only
    # "out" follows "feed" in the stream (30 µs) and "up_in" in the JSON reply (50 µs).
    assert rows["out"].endswith("| 2 | 50.0 | 50.0 | 50.0 |")
    assert "sql0" not in rows  # no request has that stamp
