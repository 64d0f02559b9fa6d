"""The results store: SQLite in the data directory, the source of truth for every run.

A run row exists from the moment a run is queued or started, and moves through
`queued` -> `running` -> `finished`; its outcome is set exactly once, when it
finishes. Epochs are written as they end, so a crash loses at most the epoch
in flight. The schema is versioned with PRAGMA user_version and changed only
by appending migrations: a newer benchd upgrades an older file in place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from benchd.protocol import EpochEnd, Started
from benchd.results import sqlite_files
from benchd.results.model import Epoch, Origin, Outcome, Run, State

log = logging.getLogger("benchd")

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
    """
    ALTER TABLE runs ADD COLUMN config_id TEXT;
    ALTER TABLE runs ADD COLUMN system TEXT;
    CREATE INDEX runs_by_config ON runs (config_id, outcome, id);
    """,
    # The process that owns a run until it ends (pid and start time): a run whose owner is gone
    # was abandoned (a `benchd run` killed with SIGKILL) and is interrupted, never left running.
    """
    ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
    ALTER TABLE runs ADD COLUMN owner_started REAL;
    """,
    # What the run computes (FLOPs per step and epoch, compile seconds, the peak FLOP/s): the child's
    # `compute` object, as JSON.
    """
    ALTER TABLE runs ADD COLUMN compute TEXT;
    """,
    # Deterministic runs (docs/workloads.md): the stack, the fingerprint and what it was compared with, as
    # JSON; and each epoch's per-step loss bits, where a divergence is found.
    """
    ALTER TABLE runs ADD COLUMN determinism TEXT;
    ALTER TABLE epochs ADD COLUMN loss_bits TEXT;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
_DAMAGED_ADVICE = "move it aside (benchd starts a new one) or restore it from a backup"
_LOCKED_ADVICE = "another process holds it locked; try again when it is done"
OWNER_START_TOLERANCE_SECONDS = 1.0  # psutil's start times are rounded to clock ticks


class StoreError(Exception):
    """The store cannot be opened or is from a newer benchd."""


class UnreadableRunError(StoreError):
    """One run's stored record cannot be read (edited by hand, written by a broken build): names it."""

    def __init__(self, run_id: int, reason: str) -> None:
        super().__init__(f"run {run_id}: its stored record cannot be read ({reason})")
        self.run_id = run_id


_RUN_COLUMNS = (
    "id, workload, preset, config, fraction, requested_device, state, outcome, message, stderr_tail, "
    "log_path, device, device_type, device_name, precision, torch_version, benchd_version, "
    "driver_version, data_kind, data_samples, parameters, samples_per_epoch, sample_unit, "
    "peak_host_rss_bytes, queued_at, started_at, finished_at, timeout_seconds, origin, baseline, "
    "timing, workers, data_scale, config_id, system, compute, determinism"
)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def owner() -> tuple[int, float]:
    """This process: its pid and start time, which together name it even after the pid is reused."""
    return os.getpid(), psutil.Process().create_time()


def owner_alive(pid: int, started: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started) < OWNER_START_TOLERANCE_SECONDS
    except psutil.Error:
        return False


class ResultsStore:
    """Thread-safe access to one SQLite file (one connection, serialised by a lock).

    `read_only` is for commands that only look (runs, show, export, status without a daemon): they
    change no byte of the data directory (sqlite_files.open_read_only) and never migrate.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self._copy: Path | None = None
        try:
            sqlite_files.check_wal(path)
        except sqlite_files.DamagedLogError as exc:
            raise StoreError(f"{path}: the results store cannot be used ({exc}); {_DAMAGED_ADVICE}") from None
        try:
            if read_only:
                self._db, self._copy = sqlite_files.open_read_only(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the results store ({exc})") from None
        self._identity = _file_identity(path)
        self._lock = threading.Lock()
        self.unreadable: dict[int, str] = {}  # run id -> why its record could not be read
        self.writable = True
        """Whether the last write committed: False from a failed write (disk full, read-only,
        locked) until one succeeds. Read without I/O, for the store's health metric."""
        self.lost: str | None = None
        """Why the file this store opened is no longer at its path (deleted, replaced), once noticed by
        check_in_place(); from then on every write is refused, so nothing goes into a file no one sees."""
        try:
            self._check_intact()
            if read_only:
                self._check_version(self.schema_version, migrating=False)
            else:
                self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            advice = _LOCKED_ADVICE if "locked" in str(exc) else _DAMAGED_ADVICE
            raise StoreError(f"{path}: the results store cannot be used ({exc}); {advice}") from None
        except StoreError:
            self.close()
            raise

    def check_in_place(self) -> str | None:
        """Whether the store's path still names the file opened (a deleted or replaced data directory
        otherwise goes unnoticed: SQLite writes on into the unlinked file). Returns why not, or None."""
        if self.lost is None and _file_identity(self.path) != self._identity:
            self.lost = f"{self.path} was deleted or replaced while benchd had it open"
            self.writable = False
        return self.lost

    def _check_intact(self) -> None:
        """A damaged page anywhere fails here, at open, rather than midway through some later query."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("damaged: " + " ".join(" ".join(problems[:3]).split()))

    def close(self) -> None:
        self._db.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.lost is not None:
                raise sqlite3.OperationalError(self.lost)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self.writable = False
                raise
            self.writable = True

    def _check_version(self, version: int, *, migrating: bool) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this benchd understands "
                f"({SCHEMA_VERSION}); upgrade benchd"
            )
        if version < SCHEMA_VERSION and not migrating:
            raise StoreError(
                f"{self.path}: schema version {version} is from an older benchd; `benchd serve` or "
                f"`benchd run` upgrades it in place (this command only reads)"
            )

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version, migrating=True)
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
        origin: Origin = Origin.CLI,
    ) -> int:
        owner_pid, owner_started = owner()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (workload, preset, config, batch_size, fraction, epochs_requested, seed, "
                "requested_device, state, benchd_version, sample_unit, timeout_seconds, origin, queued_at, "
                "owner_pid, owner_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    config["workload"],
                    config["preset"],
                    json.dumps(config, sort_keys=True),
                    config["batch_size"],
                    config["fraction"],
                    config["epochs"],
                    config["seed"],
                    requested_device,
                    State.QUEUED,
                    benchd_version,
                    sample_unit,
                    timeout,
                    origin,
                    time.time(),
                    owner_pid,
                    owner_started,
                ),
            )
            assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
            return cursor.lastrowid

    def mark_running(self, run_id: int, log_path: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, started_at = ?, log_path = ? WHERE id = ?",
                (State.RUNNING, time.time(), log_path, run_id),
            )

    def record_started(
        self,
        run_id: int,
        event: Started,
        config_id: str | None = None,
        system: dict[str, Any] | None = None,
    ) -> None:
        """What the child found (the device it ran on, the model it built, the data it used), and the
        run's config identity, which the data completes."""
        data = event.get("data") or {}
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET device = ?, device_type = ?, device_name = ?, "
                "device_total_memory_bytes = ?, precision = ?, torch_version = ?, driver_version = ?, "
                "parameters = ?, samples_per_epoch = ?, steps_per_epoch = ?, "
                "data_kind = ?, data_samples = ?, data_path = ?, data_scale = ?, timing = ?, workers = ?, "
                "config_id = ?, system = ?, compute = ?, determinism = ? WHERE id = ?",
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
                    config_id,
                    None if system is None else json.dumps(system),
                    json.dumps(event["compute"]) if event.get("compute") else None,
                    json.dumps(event["determinism"]) if event.get("determinism") else None,
                    run_id,
                ),
            )

    def record_baseline(self, run_id: int, baseline: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET baseline = ? WHERE id = ?", (json.dumps(baseline), run_id))

    def add_epoch(
        self, run_id: int, event: EpochEnd, start_t: float, telemetry: dict[str, Any] | None = None
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO epochs (run_id, idx, duration_seconds, samples, steps, data_wait_seconds, "
                "peak_allocated_bytes, peak_reserved_bytes, loss, start_t, end_t, telemetry, phases, "
                "validation_loss, loss_bits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    event.get("loss_bits"),
                ),
            )

    def record_determinism(self, run_id: int, facts: dict[str, Any]) -> None:
        """Add to a deterministic run's record (its fingerprint when it ends, what it was compared with)."""
        self._merge(run_id, "determinism", facts)

    def record_compute(self, run_id: int, facts: dict[str, Any]) -> None:
        """Add what the child counted after the timed epochs (FLOPs, the peak) to the run's compute object."""
        self._merge(run_id, "compute", facts)

    def _merge(self, run_id: int, column: str, facts: dict[str, Any]) -> None:
        """A JSON object column, updated key by key (column is one of this class's own names)."""
        with self._transaction() as db:
            (stored,) = db.execute(f"SELECT {column} FROM runs WHERE id = ?", (run_id,)).fetchone()
            merged = {**(json.loads(stored) if stored else {}), **facts}
            db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (json.dumps(merged), run_id))

    def finish(
        self,
        run_id: int,
        outcome: Outcome,
        *,
        message: str | None = None,
        stderr_tail: str | None = None,
        peak_host_rss_bytes: int | None = None,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, outcome = ?, message = ?, stderr_tail = ?, "
                "peak_host_rss_bytes = ?, finished_at = ? WHERE id = ? AND state != ?",
                (
                    State.FINISHED,
                    outcome,
                    message,
                    stderr_tail,
                    peak_host_rss_bytes,
                    time.time(),
                    run_id,
                    State.FINISHED,
                ),
            )

    def get_run(self, run_id: int) -> Run | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            epoch_rows = self._db.execute(
                f"SELECT {_EPOCH_COLUMNS} FROM epochs WHERE run_id = ? ORDER BY idx", (run_id,)
            ).fetchall()
        try:
            run = _run_from_row(row)
            run.epochs = [_epoch_from_row(r) for r in epoch_rows]
        except (ValueError, TypeError, KeyError) as exc:  # JSON, a type, a missing field
            raise UnreadableRunError(run_id, str(exc) or type(exc).__name__) from None
        return run

    def _readable(self, ids: list[int]) -> list[Run]:
        """The runs that can be read; each one that cannot is logged by id and kept in `unreadable`."""
        runs = []
        for run_id in ids:
            try:
                run = self.get_run(run_id)
            except UnreadableRunError as exc:
                self.unreadable[run_id] = str(exc)
                log.warning("%s; left out", exc)
                continue
            if run is not None:
                runs.append(run)
        return runs

    def runs_in_state(self, state: State) -> list[Run]:
        with self._lock:
            ids = [
                r[0] for r in self._db.execute("SELECT id FROM runs WHERE state = ? ORDER BY id", (state,))
            ]
        return self._readable(ids)

    def unfinished_owners(self, origin: Origin) -> list[tuple[int, int, float]]:
        """(run id, owner pid, owner start time) of the origin's unfinished runs that name their owner."""
        with self._lock:
            return [
                (row[0], row[1], row[2])
                for row in self._db.execute(
                    "SELECT id, owner_pid, owner_started FROM runs WHERE origin = ? AND state IN (?, ?) "
                    "AND owner_pid IS NOT NULL ORDER BY id",
                    (origin, State.QUEUED, State.RUNNING),
                )
            ]

    def finished_since(self, moment: float) -> list[Run]:
        """Runs that finished at or after `moment` (Unix time), in the order they finished."""
        with self._lock:
            ids = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM runs WHERE state = ? AND finished_at >= ? ORDER BY finished_at, id",
                    (State.FINISHED, moment),
                )
            ]
        return self._readable(ids)

    def benchmark_seconds(self, device: str, since: float) -> float:
        """Seconds the device spent running benchmarks that finished at or after `since` (start to end)."""
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(finished_at - started_at), 0) FROM runs WHERE device = ? AND state = ? "
                "AND started_at IS NOT NULL AND finished_at >= ?",
                (device, State.FINISHED, since),
            ).fetchone()
        return float(total)

    def last_run_seconds(self, workload: str, preset: str, device: str) -> float | None:
        """How long the last finished run of this workload and preset on the device took, start to end:
        what the next one will cost, give or take."""
        with self._lock:
            row = self._db.execute(
                "SELECT finished_at - started_at FROM runs WHERE workload = ? AND preset = ? AND device = ? "
                "AND state = ? AND started_at IS NOT NULL ORDER BY id DESC LIMIT 1",
                (workload, preset, device, State.FINISHED),
            ).fetchone()
        return None if row is None else float(row[0])

    def config_history(self, config_id: str, before: int, limit: int) -> list[float]:
        """Representative epoch seconds of the config's ok, uncontended runs before run `before` (selftests
        left out), oldest first: what a result is gated against (results/baseline.py)."""
        with self._lock:
            ids = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM runs WHERE config_id = ? AND outcome = ? AND id < ? AND origin != ? "
                    "ORDER BY id DESC LIMIT ?",
                    # room for contended ones, left out below
                    (config_id, Outcome.OK, before, Origin.SELFTEST, limit * 2),
                )
            ]
        runs = [r for r in self._readable(ids) if r.summary is not None and not r.contended][:limit]
        return [r.summary.epoch_seconds for r in reversed(runs) if r.summary is not None]

    def first_deterministic_run(self, config_id: str, stack_id: str, device: str, before: int) -> Run | None:
        """The device's first deterministic run of the config on the stack, before run `before` and without
        an injected fault: what its later runs must reproduce bit for bit."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM runs WHERE config_id = ? AND device = ? AND id < ? AND origin != ? "
                "AND json_extract(determinism, '$.stack_id') = ? "
                "AND json_extract(determinism, '$.fingerprint') IS NOT NULL ORDER BY id LIMIT 1",
                (config_id, device, before, Origin.SELFTEST, stack_id),
            ).fetchone()
        return None if row is None else self.get_run(row[0])

    def finished_runs(self) -> list[Run]:
        """Every finished run, oldest first: what the daemon's counters are rebuilt from."""
        return self.runs_in_state(State.FINISHED)

    def list_runs(
        self,
        *,
        workload: str | None = None,
        outcome: str | None = None,
        config: str | None = None,
        limit: int = 50,
    ) -> list[Run]:
        clauses, params = [], []
        if config is not None:
            clauses.append("config_id = ?")
            params.append(config)
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
        return self._readable(ids)


_RUN_FIELDS = tuple(name.strip() for name in _RUN_COLUMNS.split(","))

_EPOCH_COLUMNS = (
    "idx, duration_seconds, samples, steps, data_wait_seconds, peak_allocated_bytes, "
    "peak_reserved_bytes, loss, telemetry, phases, validation_loss, loss_bits"
)
_EPOCH_FIELDS = (
    "index", "duration_seconds", "samples", "steps", "data_wait_seconds", "peak_allocated_bytes",
    "peak_reserved_bytes", "loss", "telemetry", "phases", "validation_loss", "loss_bits",
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
    for name in ("baseline", "system", "compute", "determinism"):
        values[name] = json.loads(values[name]) if values[name] else None
    return Run(**values)
