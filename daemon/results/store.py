"""The results store: SQLite in the data directory, the source of truth for every run.

A run row exists from the moment a run is queued or started, and moves through
`queued` -> `running` -> `finished`; its outcome is set exactly once, when it
finishes. Epochs are written as they end, so a crash loses at most the epoch
in flight. The schema is versioned with PRAGMA user_version and changed only
by appending migrations: a newer benchd upgrades an older file in place.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchd import catalog

QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"

# Every outcome a run can end with (runner: the first five; daemon: skipped, interrupted).
OUTCOMES = ("ok", "oom", "error", "timeout", "cancelled", "skipped", "interrupted")

BASIS_FIRST = "first-epoch"
BASIS_MEDIAN = "median-after-first"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workload TEXT NOT NULL,
        preset TEXT NOT NULL,
        config TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        fraction REAL NOT NULL,
        epochs_requested INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        requested_device TEXT NOT NULL,
        state TEXT NOT NULL,
        outcome TEXT,
        message TEXT,
        stderr_tail TEXT,
        log_path TEXT,
        device TEXT,
        device_type TEXT,
        device_name TEXT,
        device_total_memory_bytes INTEGER,
        precision TEXT,
        torch_version TEXT,
        benchd_version TEXT NOT NULL,
        driver_version TEXT,
        data_kind TEXT,
        data_samples INTEGER,
        data_path TEXT,
        parameters INTEGER,
        samples_per_epoch INTEGER,
        steps_per_epoch INTEGER,
        sample_unit TEXT,
        peak_host_rss_bytes INTEGER,
        queued_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    );
    CREATE INDEX runs_by_workload ON runs (workload, preset, id);
    CREATE INDEX runs_by_state ON runs (state);
    CREATE TABLE epochs (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        duration_seconds REAL NOT NULL,
        samples INTEGER NOT NULL,
        steps INTEGER NOT NULL,
        data_wait_seconds REAL NOT NULL,
        peak_allocated_bytes INTEGER,
        peak_reserved_bytes INTEGER,
        loss REAL,
        start_t REAL NOT NULL,
        end_t REAL NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN timeout_seconds REAL;
    ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'cli';
    CREATE INDEX runs_by_outcome ON runs (workload, preset, outcome, id);
    """,
    """
    ALTER TABLE epochs ADD COLUMN telemetry TEXT;
    ALTER TABLE runs ADD COLUMN baseline TEXT;
    """,
    """
    ALTER TABLE runs ADD COLUMN timing TEXT;
    ALTER TABLE runs ADD COLUMN workers INTEGER;
    ALTER TABLE runs ADD COLUMN data_scale REAL;
    ALTER TABLE epochs ADD COLUMN phases TEXT;
    ALTER TABLE epochs ADD COLUMN validation_loss REAL;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The store cannot be opened or is from a newer benchd."""


@dataclass(frozen=True)
class Epoch:
    index: int
    duration_seconds: float
    samples: int
    steps: int
    data_wait_seconds: float
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    loss: float | None
    telemetry: dict[str, Any] | None = None
    phases: dict[str, float] | None = None  # seconds by phase (protocol.PHASES); None before schema 4
    validation_loss: float | None = None

    def domain(self, name: str) -> dict[str, Any]:
        """This epoch's sensor figures for one domain (`cpu`, `cuda:0`), empty when none."""
        return ((self.telemetry or {}).get("domains") or {}).get(name, {})

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "samples_per_second": self.samples_per_second}


@dataclass(frozen=True)
class Summary:
    """The run's representative figures and which epochs they come from."""

    basis: str
    epoch_seconds: float
    samples_per_second: float
    epochs: tuple[int, ...]


def summarize(epochs: list[Epoch]) -> Summary | None:
    """Median of the epochs after the first when there are several; the first when alone.

    The first epoch pays one-time costs (autotuning, allocator growth), so it
    only stands for the run when it is all there is.
    """
    if not epochs:
        return None
    chosen = epochs[1:] if len(epochs) > 1 else epochs[:1]
    return Summary(
        basis=BASIS_MEDIAN if len(epochs) > 1 else BASIS_FIRST,
        epoch_seconds=statistics.median(e.duration_seconds for e in chosen),
        samples_per_second=statistics.median(e.samples_per_second for e in chosen),
        epochs=tuple(e.index for e in chosen),
    )


@dataclass
class Run:
    id: int
    workload: str
    preset: str
    config: dict[str, Any]
    fraction: float
    requested_device: str
    state: str
    outcome: str | None
    message: str | None
    stderr_tail: str | None
    log_path: str | None
    device: str | None
    device_type: str | None
    device_name: str | None
    precision: str | None
    torch_version: str | None
    benchd_version: str
    driver_version: str | None
    data_kind: str | None
    data_samples: int | None
    parameters: int | None
    samples_per_epoch: int | None
    sample_unit: str | None
    peak_host_rss_bytes: int | None
    queued_at: float
    started_at: float | None
    finished_at: float | None
    timeout_seconds: float | None
    origin: str
    baseline: dict[str, Any] | None = None
    timing: str | None = None  # None: stored before timings existed (steps on in-memory data)
    workers: int | None = None  # DataLoader workers in the timed region, as the child resolved them
    data_scale: float | None = None  # a synthetic set's size relative to the real one
    epochs: list[Epoch] = field(default_factory=list)

    @property
    def summary(self) -> Summary | None:
        return summarize(self.epochs)

    def phase_summary(self) -> dict[str, float]:
        """Median seconds per phase over the representative epochs; phases never run are absent."""
        summary = self.summary
        if summary is None:
            return {}
        chosen = [e.phases for e in self.epochs if e.index in summary.epochs and e.phases]
        names = dict.fromkeys(name for phases in chosen for name in phases)
        return {name: statistics.median(p.get(name, 0.0) for p in chosen) for name in names}

    def energy_summary(self) -> dict[str, float]:
        """The run's device-domain sensor figures over its representative epochs.

        Energy and average power: medians, like the epoch time; temperature:
        the maximum. Only figures that were measured appear.
        """
        summary = self.summary
        if summary is None or self.device is None:
            return {}
        chosen = [e.domain(self.device) for e in self.epochs if e.index in summary.epochs]
        result: dict[str, float] = {}
        for key, pick in (
            ("energy_joules", statistics.median),
            ("average_power_watts", statistics.median),
            ("peak_power_watts", max),
            ("max_temperature_celsius", max),
        ):
            values = [figures[key]["value"] for figures in chosen if key in figures]
            if values:
                result[key] = pick(values)
        return result

    @property
    def peak_device_bytes(self) -> int | None:
        values = [e.peak_reserved_bytes for e in self.epochs if e.peak_reserved_bytes is not None]
        return max(values) if values else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        """The inverse of to_json, for clients that read runs from the API."""
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in names and k != "epochs"}
        values["data_kind"] = data.get("data")
        epoch_names = set(Epoch.__dataclass_fields__)
        epochs = [Epoch(**{k: v for k, v in e.items() if k in epoch_names}) for e in data.get("epochs", [])]
        return cls(**values, epochs=epochs)

    def to_json(self) -> dict[str, Any]:
        summary = self.summary
        data = {k: v for k, v in asdict(self).items() if k != "epochs"}
        data["data"] = data.pop("data_kind")
        data["epochs"] = [e.to_json() for e in self.epochs]
        data["summary"] = (
            {**asdict(summary), **self.energy_summary(), "phases": self.phase_summary()} if summary else None
        )
        data["peak_device_bytes"] = self.peak_device_bytes
        data["setup"] = self.setup()
        return data

    def setup(self) -> dict[str, Any] | None:
        """The config in the published table's columns (catalog.setup); None if it cannot be read."""
        try:
            return catalog.setup(self.config)
        except (catalog.CatalogError, KeyError, TypeError):
            return None


_RUN_COLUMNS = (
    "id, workload, preset, config, fraction, requested_device, state, outcome, message, stderr_tail, "
    "log_path, device, device_type, device_name, precision, torch_version, benchd_version, "
    "driver_version, data_kind, data_samples, parameters, samples_per_epoch, sample_unit, "
    "peak_host_rss_bytes, queued_at, started_at, finished_at, timeout_seconds, origin, baseline, "
    "timing, workers, data_scale"
)


class ResultsStore:
    """Thread-safe access to one SQLite file (one connection, serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the results store ({exc})") from None
        self._lock = threading.Lock()
        self._migrate()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this benchd understands "
                    f"({SCHEMA_VERSION}); upgrade benchd"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def create_run(
        self,
        config: dict[str, Any],
        *,
        requested_device: str,
        benchd_version: str,
        sample_unit: str,
        timeout: float | None = None,
        origin: str = "cli",
    ) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (workload, preset, config, batch_size, fraction, epochs_requested, seed, "
                "requested_device, state, benchd_version, sample_unit, timeout_seconds, origin, queued_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    config["workload"],
                    config["preset"],
                    json.dumps(config, sort_keys=True),
                    config["batch_size"],
                    config["fraction"],
                    config["epochs"],
                    config["seed"],
                    requested_device,
                    QUEUED,
                    benchd_version,
                    sample_unit,
                    timeout,
                    origin,
                    time.time(),
                ),
            )
            return int(cursor.lastrowid)

    def mark_running(self, run_id: int, log_path: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, started_at = ?, log_path = ? WHERE id = ?",
                (RUNNING, time.time(), log_path, run_id),
            )

    def record_started(self, run_id: int, event: dict[str, Any]) -> None:
        """What the child found: the device it ran on, the model it built, the data it used."""
        data = event.get("data") or {}
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET device = ?, device_type = ?, device_name = ?, "
                "device_total_memory_bytes = ?, precision = ?, torch_version = ?, driver_version = ?, "
                "parameters = ?, samples_per_epoch = ?, steps_per_epoch = ?, "
                "data_kind = ?, data_samples = ?, data_path = ?, data_scale = ?, timing = ?, workers = ? "
                "WHERE id = ?",
                (
                    event.get("device"),
                    event.get("device_type"),
                    event.get("device_name"),
                    event.get("device_total_memory_bytes"),
                    event.get("precision"),
                    event.get("torch_version"),
                    event.get("driver_version"),
                    event.get("parameters"),
                    event.get("samples_per_epoch"),
                    event.get("steps_per_epoch"),
                    data.get("kind"),
                    data.get("samples"),
                    data.get("path"),
                    data.get("scale"),
                    event.get("timing"),
                    event.get("workers"),
                    run_id,
                ),
            )

    def record_baseline(self, run_id: int, baseline: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET baseline = ? WHERE id = ?", (json.dumps(baseline), run_id))

    def add_epoch(
        self, run_id: int, event: dict[str, Any], start_t: float, telemetry: dict[str, Any] | None = None
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO epochs (run_id, idx, duration_seconds, samples, steps, data_wait_seconds, "
                "peak_allocated_bytes, peak_reserved_bytes, loss, start_t, end_t, telemetry, phases, "
                "validation_loss) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    event["epoch"],
                    event["duration"],
                    event["samples"],
                    event["steps"],
                    event["data_wait"],
                    event.get("peak_allocated_bytes"),
                    event.get("peak_reserved_bytes"),
                    event.get("loss"),
                    start_t,
                    event["t"],
                    None if telemetry is None else json.dumps(telemetry),
                    json.dumps(event["phases"]) if event.get("phases") else None,
                    event.get("validation_loss"),
                ),
            )

    def finish(
        self,
        run_id: int,
        outcome: str,
        *,
        message: str | None = None,
        stderr_tail: str | None = None,
        peak_host_rss_bytes: int | None = None,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, outcome = ?, message = ?, stderr_tail = ?, "
                "peak_host_rss_bytes = ?, finished_at = ? WHERE id = ? AND state != ?",
                (FINISHED, outcome, message, stderr_tail, peak_host_rss_bytes, time.time(), run_id, FINISHED),
            )

    def get_run(self, run_id: int) -> Run | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            epoch_rows = self._db.execute(
                f"SELECT {_EPOCH_COLUMNS} FROM epochs WHERE run_id = ? ORDER BY idx", (run_id,)
            ).fetchall()
        run = _run_from_row(row)
        run.epochs = [_epoch_from_row(r) for r in epoch_rows]
        return run

    def runs_in_state(self, state: str) -> list[Run]:
        with self._lock:
            ids = [
                r[0] for r in self._db.execute("SELECT id FROM runs WHERE state = ? ORDER BY id", (state,))
            ]
        return [run for run in (self.get_run(i) for i in ids) if run is not None]

    def finished_runs(self) -> list[Run]:
        """Every finished run, oldest first: what the daemon's counters are rebuilt from."""
        return self.runs_in_state(FINISHED)

    def list_runs(
        self, *, workload: str | None = None, outcome: str | None = None, limit: int = 50
    ) -> list[Run]:
        clauses, params = [], []
        if workload is not None:
            clauses.append("workload = ?")
            params.append(workload)
        if outcome is not None:
            clauses.append("outcome = ?")
            params.append(outcome)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    f"SELECT id FROM runs {where} ORDER BY id DESC LIMIT ?", (*params, limit)
                ).fetchall()
            ]
        return [run for run in (self.get_run(i) for i in ids) if run is not None]


_RUN_FIELDS = tuple(name.strip() for name in _RUN_COLUMNS.split(","))

_EPOCH_COLUMNS = (
    "idx, duration_seconds, samples, steps, data_wait_seconds, peak_allocated_bytes, "
    "peak_reserved_bytes, loss, telemetry, phases, validation_loss"
)
_EPOCH_FIELDS = (
    "index", "duration_seconds", "samples", "steps", "data_wait_seconds", "peak_allocated_bytes",
    "peak_reserved_bytes", "loss", "telemetry", "phases", "validation_loss",
)  # fmt: skip
_JSON_EPOCH_FIELDS = ("telemetry", "phases")


def _epoch_from_row(row: tuple[Any, ...]) -> Epoch:
    values = dict(zip(_EPOCH_FIELDS, row, strict=True))
    for name in _JSON_EPOCH_FIELDS:
        values[name] = json.loads(values[name]) if values[name] else None
    return Epoch(**values)


def _run_from_row(row: tuple[Any, ...]) -> Run:
    values = dict(zip(_RUN_FIELDS, row, strict=True))
    values["config"] = json.loads(values["config"])
    values["baseline"] = json.loads(values["baseline"]) if values["baseline"] else None
    return Run(**values)
