"""Tables and lines fit the terminal: 80, 100 and 160 columns with the longest preset names and device
names, and no identifier (workload, preset, config, run id) is ever cut or wrapped."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from benchd.catalog import WORKLOADS
from benchd.cli import report
from benchd.results.model import Run

PUBLISHED = Path(__file__).parent / "fixtures" / "published"
LONG_DEVICES = [
    "Intel(R) Xeon(R) Platinum 8480+ Processor", "NVIDIA GeForce RTX 2070 SUPER", "Apple M1 Ultra"
]  # fmt: skip
WIDTHS = [80, 100, 160]


def hostile_width_runs() -> list[Run]:
    """Every published run (the longest presets among them), with long device names and contended marks."""
    runs = []
    for index, path in enumerate(sorted(PUBLISHED.glob("*.json"))):
        for data in json.loads(path.read_text())["runs"]:
            data["device_name"] = LONG_DEVICES[(data["id"] + index) % len(LONG_DEVICES)]
            data["id"] += 1000 * index
            runs.append(Run.from_json(data))
    return runs


def identifiers(run: Run, wide: bool) -> list[str]:
    """What a reader must be able to copy whole; the config id is a --wide column."""
    return [str(run.id), run.workload, run.preset, *([run.config_id] if run.config_id and wide else [])]


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("width", WIDTHS)
def test_the_runs_table_fits_and_never_cuts_an_identifier(width: int, wide: bool) -> None:
    """`runs`, `run` and `trigger --wait` print this table."""
    runs = hostile_width_runs()
    out = io.StringIO()
    report.plain_console(width=width, file=out).print(report.runs_table(runs, wide=wide))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    longest = max((p.name for w in WORKLOADS.values() for p in w.presets), key=len)
    assert any(longest in line for line in lines)
    text = out.getvalue()
    for run in runs:
        for identifier in identifiers(run, wide):
            assert identifier in text, identifier
    assert "…" not in text and "\\x" not in text  # nothing cut, no line break shown as an escape


@pytest.mark.parametrize("width", WIDTHS)
def test_show_and_status_lines_fit_and_keep_identifiers_whole(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchd.cli.remote import _print_status, _show_run

    monkeypatch.setenv("COLUMNS", str(width))
    run = max(hostile_width_runs(), key=lambda r: len(r.preset))
    _show_run(run.id, run.to_json(), "local store /var/lib/benchd/benchd.sqlite3", False)
    _print_status({
        "version": "0.1.0", "pid": 4242, "ready": True, "not_ready_reason": None, "uptime_seconds": 93784,
        "devices": [{"id": "cpu", "name": LONG_DEVICES[0]}], "active": [], "queue": [],
        "last": [{"workload": run.workload, "preset": run.preset, "device": "cuda:0", "outcome": "ok",
                  "contended": True, "contended_runs": 3, "contended_epoch_seconds": 12.5,
                  "contention": "foreign CPU 49%", "finished_at": 1.7e9, "success_at": 1.7e9,
                  "epoch_seconds": 10.25, "fraction": 0.05, "config": "56c3155d8f92", "mfu_ratio": 0.123,
                  "variation_ratio": 0.07, "unstable": True}],
    })  # fmt: skip
    printed = capsys.readouterr().out
    assert max(len(line) for line in printed.splitlines()) <= width
    words = printed.split()  # an identifier wrapped or cut would not be a word of its own
    assert words.count(run.preset) == 2  # in show's preset line and in status's series
    assert "56c3155d8f92" in words and str(run.id) in words
    assert f"device: {run.device_name} ({run.device_type})" in " ".join(words)  # show keeps the full name


@pytest.mark.parametrize(
    ("name", "short"),
    [("Intel(R) Xeon(R) Processor", "Intel Xeon"), ("NVIDIA GeForce RTX 2070 SUPER", "RTX 2070 SUPER"),
     ("NVIDIA H200", "NVIDIA H200"), ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763 64-Core"),
     ("Intel(R) Core(TM) i9-13900K CPU", "Intel Core i9-13900K"), ("Processor", "Processor")],
)  # fmt: skip
def test_device_names_lose_what_says_nothing(name: str, short: str) -> None:
    assert report.short_device_name(name) == short


def test_status_and_show_say_where_a_running_run_is(capsys: pytest.CaptureFixture[str]) -> None:
    from benchd.cli.remote import _print_status, _show_run

    active = {"id": 7, "workload": "vae", "preset": "bs128", "device": "cpu", "epoch": 1, "epochs": 3,
              "step": 120, "steps": 469}  # fmt: skip
    _print_status({"version": "0.1.0", "pid": 1, "ready": True, "not_ready_reason": None, "uptime_seconds": 5,
                   "devices": [], "active": [active], "queue": [], "last": [],
                   "next": {"vae": 1.7e9}})  # fmt: skip
    run = hostile_width_runs()[0].to_json()
    _show_run(7, {**run, "state": "running", "outcome": None, "progress": active}, "daemon", False)
    printed = capsys.readouterr().out
    assert "running: run 7 vae bs128 on cpu, epoch 2/3, step 120 of 469" in printed
    assert "  next: vae at " in printed
    assert "  progress: epoch 2/3, step 120 of 469" in printed


def test_the_runs_table_says_why_a_run_is_set_apart() -> None:
    import dataclasses

    run = hostile_width_runs()[0]
    busy = {"foreign": {"foreign_cpu_ratio": 0.49, "foreign_gpu_processes": None, "contended": True}}
    run.epochs = [dataclasses.replace(e, telemetry={**(e.telemetry or {}), **busy}) for e in run.epochs]
    out = io.StringIO()
    report.plain_console(width=200, file=out).print(report.runs_table([run]))
    assert "ok (contended: foreign CPU 49%)" in out.getvalue()
