"""The results store: lifecycle of a run, migrations, and the representative epoch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchd.results.model import BASIS_FIRST, BASIS_MEDIAN, Epoch, summarize
from benchd.results.store import MIGRATIONS, SCHEMA_VERSION, ResultsStore, StoreError

CONFIG = {
    "workload": "vae",
    "preset": "bs128",
    "batch_size": 128,
    "options": {},
    "epochs": 3,
    "fraction": 0.5,
    "workers": 0,
    "seed": 1,
}
DATA = {"name": "mnist", "kind": "synthetic", "samples": 60000, "path": "/data/mnist", "scale": 1.0}


def epoch_event(index: int, duration: float) -> dict:
    return {
        "event": "epoch_end",
        "t": 100.0 + index,
        "epoch": index,
        "duration": duration,
        "samples": 1000,
        "steps": 8,
        "data_wait": 0.1,
        "peak_allocated_bytes": 10 + index,
        "peak_reserved_bytes": 20 + index,
        "loss": 1.5,
    }


def test_run_lifecycle(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "s.sqlite3")
    run_id = store.create_run(CONFIG, requested_device="cpu", benchd_version="9", sample_unit="images")
    run = store.get_run(run_id)
    assert run is not None and run.state == "queued" and run.outcome is None
    store.mark_running(run_id, "/logs/run.log")
    store.record_started(
        run_id, {"device": "cpu", "device_type": "cpu", "device_name": "X", "parameters": 5, "data": DATA}
    )
    for index, duration in enumerate([3.0, 1.0, 2.0]):
        store.add_epoch(run_id, epoch_event(index, duration), start_t=99.0 + index)
    store.finish(run_id, "ok", peak_host_rss_bytes=123)
    store.finish(run_id, "error", message="late")  # an outcome is set once
    run = store.get_run(run_id)
    assert run is not None
    assert (run.state, run.outcome, run.message) == ("finished", "ok", None)
    assert run.device_name == "X" and run.parameters == 5 and run.data_kind == "synthetic"
    assert [e.duration_seconds for e in run.epochs] == [3.0, 1.0, 2.0]
    assert run.peak_device_bytes == 22
    as_json = run.to_json()
    assert as_json["data"] == "synthetic"
    assert as_json["summary"]["basis"] == BASIS_MEDIAN
    assert as_json["summary"]["epoch_seconds"] == 1.5
    assert [r.id for r in store.list_runs(workload="vae", outcome="ok")] == [run_id]
    assert store.list_runs(outcome="error") == []


def test_summary_basis() -> None:
    def epoch(i: int, d: float) -> Epoch:
        return Epoch(i, d, 100, 1, 0.0, None, None, None)

    assert summarize([]) is None
    single = summarize([epoch(0, 4.0)])
    assert single is not None and single.basis == BASIS_FIRST and single.epoch_seconds == 4.0
    several = summarize([epoch(0, 9.0), epoch(1, 2.0), epoch(2, 4.0), epoch(3, 3.0)])
    assert several is not None
    assert several.epoch_seconds == 3.0 and several.epochs == (1, 2, 3)
    assert several.samples_per_second == pytest.approx(100 / 3.0)


def test_schema_is_versioned_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = ResultsStore(path)
    run_id = store.create_run(CONFIG, requested_device="cpu", benchd_version="9", sample_unit="images")
    store.close()
    reopened = ResultsStore(path)
    assert reopened.schema_version == SCHEMA_VERSION
    assert reopened.get_run(run_id) is not None
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_newer_schema_is_refused_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this benchd understands"):
        ResultsStore(path)


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute(
        "INSERT INTO runs (workload, preset, config, batch_size, fraction, epochs_requested, seed, "
        "requested_device, state, outcome, benchd_version, queued_at) "
        "VALUES ('vae', 'bs128', '{}', 128, 1.0, 1, 1, 'cpu', 'finished', 'ok', '0.0.1', 1.0)"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = ResultsStore(path)
    assert store.schema_version == SCHEMA_VERSION
    run = store.get_run(1)
    assert run is not None
    assert (run.outcome, run.origin, run.timeout_seconds) == ("ok", "cli", None)
    assert (run.timing, run.workers, run.data_scale) == (None, None, None)  # stored before timings existed
    assert run.to_json()["setup"] is None  # an unreadable config is shown as unknown, not a crash


def test_phases_and_timing_round_trip(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "s.sqlite3")
    run_id = store.create_run(
        {**CONFIG, "timing": "reference", "batch_size": 64}, requested_device="cpu", benchd_version="9",
        sample_unit="images",
    )  # fmt: skip
    store.record_started(run_id, {"device": "cpu", "timing": "reference", "workers": 1, "data": DATA})
    for index, (steps, wait) in enumerate(((0.9, 0.3), (0.5, 0.1), (0.7, 0.3))):
        phases = {"steps": steps, "data_wait": wait, "validation": 0.2}
        event = {**epoch_event(index, steps + wait + 0.2), "phases": phases, "validation_loss": 5.0 - index}
        store.add_epoch(run_id, event, start_t=float(index))
    store.finish(run_id, "ok")
    run = store.get_run(run_id)
    assert run is not None
    assert (run.timing, run.workers, run.data_scale) == ("reference", 1, 1.0)
    assert run.epochs[2].phases == {"steps": 0.7, "data_wait": 0.3, "validation": 0.2}
    assert run.epochs[2].validation_loss == 3.0
    assert run.phase_summary() == pytest.approx({"steps": 0.6, "data_wait": 0.2, "validation": 0.2})
    shown = run.to_json()
    assert shown["summary"]["phases"] == run.phase_summary()
    assert shown["setup"] == {"batch_size": 64, "overridden": True}
