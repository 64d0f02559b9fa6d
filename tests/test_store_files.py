"""The store is never silently emptied: a damaged write-ahead log stops benchd, read-only commands change
no byte of the data directory, and a data directory deleted under a running daemon is noticed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchd.paths import store_path
from benchd.results import sqlite_files
from benchd.results.store import ResultsStore, StoreError

from .daemon_process import DaemonProcess, wait_for
from .test_cli import assert_bad_input, benchd

NO_DAEMON = ("--url", "http://127.0.0.1:9")  # nothing listens on the discard port: the local store is read
READ_ONLY_COMMANDS = [("runs", *NO_DAEMON), ("show", "1", *NO_DAEMON), ("export",)]
QUIET = '[busy_check]\nenabled = false\n[workloads.vae]\ninterval = "24h"\npresets = ["bs128"]\n'


def crashed_store(data_dir: Path) -> Path:
    """A store whose writer died without closing it (as a killed daemon leaves it): its last runs are
    only in the write-ahead log, beside the shared-memory index."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from benchd.results.store import ResultsStore\n"
        "store = ResultsStore(Path(sys.argv[1]))\n"
        "for _ in range(3):\n"
        "    run = store.create_run({'workload': 'vae', 'preset': 'bs128', 'batch_size': 128,\n"
        "        'fraction': 0.5, 'epochs': 1, 'seed': 1, 'options': {}}, requested_device='cpu',\n"
        "        benchd_version='test',\n"
        "        sample_unit='images')\n"
        "    store.finish(run, 'ok')\n"
        "os._exit(0)\n"
    )
    path = store_path(data_dir)
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert sqlite_files.wal_path(path).stat().st_size > 0
    return path


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("with_index", [True, False], ids=["wal-and-index", "wal-without-index"])
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: c[0])
def test_read_only_commands_change_no_byte_of_the_data_directory(
    tmp_path: Path, command: tuple[str, ...], with_index: bool
) -> None:
    path = crashed_store(tmp_path)
    if not with_index:
        sqlite_files.shm_path(path).unlink()
    before = checksums(tmp_path)
    result = benchd(*command, "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert checksums(tmp_path) == before
    if command[0] == "runs":
        assert result.stdout.count("vae") >= 3  # the runs only the log held were read


def _damage_wal_header(path: Path) -> None:
    log = sqlite_files.wal_path(path)
    data = bytearray(log.read_bytes())
    data[20] ^= 0xFF  # a salt byte: the header checksum no longer matches
    log.write_bytes(bytes(data))


def test_a_damaged_wal_is_one_line_exit_2_and_is_never_deleted(tmp_path: Path) -> None:
    path = crashed_store(tmp_path)
    _damage_wal_header(path)
    before = checksums(tmp_path)
    for command in [*READ_ONLY_COMMANDS, ("run", "vae", "-p", "bs128", "--fraction", "0.01")]:
        assert_bad_input(
            benchd(*command, "--data-dir", str(tmp_path)), "write-ahead log benchd.sqlite3-wal is damaged"
        )
    served = subprocess.run(
        [sys.executable, "-m", "benchd", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert served.returncode == 2 and "is damaged" in served.stderr and "Traceback" not in served.stderr
    after = checksums(tmp_path)
    assert {name: after[name] for name in before} == before  # the daemon's lock file may be new


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(0, "magic"), (4, "format"), (8, "page size"), (16, "checksum"), (24, "checksum")],
)
def test_each_damage_to_a_wal_header_is_named(tmp_path: Path, offset: int, reason: str) -> None:
    path = crashed_store(tmp_path)
    header = bytearray(sqlite_files.wal_path(path).read_bytes()[: sqlite_files.WAL_HEADER_BYTES])
    assert sqlite_files.wal_problem(bytes(header)) is None
    header[offset + 1] ^= 0x10
    problem = sqlite_files.wal_problem(bytes(header))
    assert problem is not None and reason in problem
    assert "cut short" in (sqlite_files.wal_problem(bytes(header[:10])) or "")


def test_an_older_schema_is_not_migrated_by_a_read_only_command(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    ResultsStore(path).close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 3")
    with pytest.raises(StoreError, match="from an older benchd"):
        ResultsStore(path, read_only=True)


def test_a_store_whose_file_is_replaced_refuses_writes(tmp_path: Path) -> None:
    store = ResultsStore(store_path(tmp_path / "data"))
    assert store.check_in_place() is None
    shutil.rmtree(tmp_path / "data")
    assert "deleted or replaced" in (store.check_in_place() or "")
    assert store.writable is False
    with pytest.raises(Exception, match="deleted or replaced"):
        store.create_run({"workload": "vae", "preset": "bs128", "batch_size": 128, "fraction": 0.5,
                          "epochs": 1, "seed": 1, "options": {}},
                         requested_device="cpu", benchd_version="test", sample_unit="images")  # fmt: skip
    store.close()


@pytest.mark.slow
def test_a_data_directory_deleted_under_the_daemon_is_noticed_and_locks_its_path(tmp_path: Path) -> None:
    data = tmp_path / "data"
    daemon = DaemonProcess(tmp_path, QUIET, env={"BENCHD_DATA_DIR": str(data)})
    second = DaemonProcess(tmp_path, QUIET, env={"BENCHD_DATA_DIR": str(data)})
    try:
        daemon.start()
        shutil.rmtree(data)
        wait_for(lambda: daemon.http.get("/readyz").status_code == 503, 30, "readiness to say it is gone")
        assert "deleted or replaced" in daemon.http.get("/readyz").json()["reason"]
        metrics = daemon.http.get("/metrics").text
        assert 'benchd_collector_up{collector="store"} 0.0' in metrics
        second.start(wait_ready=False)
        assert second.process is not None and second.process.wait(60) == 2
        assert "already serving" in second.log.read_text()
        assert daemon.http.post("/api/v1/runs", json={"workload": "vae"}).status_code in (503, 202)
        assert not store_path(data).exists()  # nothing recreated the store behind the operator's back
        assert daemon.log.read_text().count("deleted or replaced") == 1
    finally:
        daemon.close()
        second.close()
