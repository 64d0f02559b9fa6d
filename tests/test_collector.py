"""The metrics contract in-process: a fixed store through the scoreboard and the collector.

Fast (milliseconds, no daemon, no child): the whole exposition is pinned
against a golden file, the way node_exporter pins its end-to-end output, and
single figures are read with `get_sample_value`, the way client_python tests
its own collectors. Regenerate the golden file after an intended change with
BENCHD_UPDATE_GOLDEN=1 and review its diff (metric changes need a CHANGELOG
entry and docs/metrics.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchd import metric_contract as contract
from benchd.health.book import HealthBook
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import RunQueue
from benchd.results.model import Epoch, Outcome, Run
from benchd.results.store import ResultsStore
from benchd.server.metrics import BenchdCollector, DaemonFacts
from benchd.server.scoreboard import Scoreboard, Snapshot

GOLDEN = Path(__file__).parent / "fixtures" / "metrics.golden.txt"
VAE_CONFIG = "aaaaaaaaaaaa"
VAE = {"workload": "vae", "preset": "bs128", "device": "cpu", "config": VAE_CONFIG}
CPU_DEVICE = {"id": "cpu", "type": "cpu", "name": "Test CPU", "total_memory_bytes": None}


# What the child reports: a CPU's measured peak gives an MFU; an unknown accelerator has none.
COMPUTE = {
    "cpu": {"flops_per_step": 4.2e8, "flops_per_epoch": 3.36e9, "peak_flops": 1.0e11,
            "peak_source": "measured: torch.float32 matmul 1024x1024, threads: 2"},
    "cuda": {"flops_per_step": 3.0e10, "flops_per_epoch": 2.4e11, "compile_seconds": 12.5,
             "peak_unavailable": "no published peak for 'Test cuda:0'"},
}  # fmt: skip


def _config(preset: str, batch: int, options: dict | None = None) -> dict:
    return {
        "workload": "transformer" if options else "vae", "preset": preset, "batch_size": batch,
        "options": options or {}, "epochs": 2, "fraction": 0.5, "workers": None, "seed": 1,
        "timing": "reference",
    }  # fmt: skip


def _add_run(
    store: ResultsStore,
    config: dict,
    outcome: Outcome,
    durations: list[float],
    device: str,
    config_id: str,
    foreign_cpu: float | None = None,
) -> None:
    run_id = store.create_run(config, requested_device=device, benchd_version="0.0.0", sample_unit="images")
    store.mark_running(run_id, f"/logs/run-{run_id}.log")
    kind = device.split(":", maxsplit=1)[0]
    started = {"device": device, "device_type": kind, "device_name": f"Test {device}",
               "torch_version": "2.0.0-test", "timing": "reference", "workers": 0,
               "data": {"kind": "synthetic", "samples": 60000, "scale": 1.0},
               "compute": COMPUTE[kind]}  # fmt: skip
    accelerator = None if device == "cpu" else {"uuid": "GPU-0000", "power_limit_watts": 215.0}
    store.record_started(run_id, started, config_id, {"hostname": "test-host", "accelerator": accelerator})
    for index, duration in enumerate(durations):
        event = {
            "t": 100.0 + index, "epoch": index, "duration": duration, "samples": 1000, "steps": 8,
            "data_wait": duration / 4, "phases": {"data_wait": duration / 4, "steps": duration * 3 / 4},
            "peak_allocated_bytes": None if device == "cpu" else 2**30,
            "peak_reserved_bytes": None if device == "cpu" else 2**31, "loss": 1.5,
        }  # fmt: skip
        foreign = None if foreign_cpu is None else {
            "foreign": {"foreign_cpu_ratio": foreign_cpu, "foreign_gpu_processes": None, "contended": True}
        }  # fmt: skip
        store.add_epoch(run_id, event, start_t=float(index), telemetry=foreign)
    store.finish(run_id, outcome, message=None if outcome == Outcome.OK else "test failure")


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    """Five finished runs at fixed times: two ok VAE runs, a VAE run out of memory, a transformer run, and
    a transformer run beside foreign load (contended)."""
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    _add_run(store, _config("bs128", 128), Outcome.OK, [2.0, 1.0, 1.2], "cpu", VAE_CONFIG)
    _add_run(store, _config("bs128", 128), Outcome.OK, [1.5, 0.9, 1.1], "cpu", VAE_CONFIG)
    _add_run(store, _config("bs5120", 5120), Outcome.OOM, [], "cpu", "bbbbbbbbbbbb")
    options = {"emsize": 200, "nlayers": 2, "nhid": 200}
    _add_run(
        store, _config("b20-e200-l2-h200", 20, options), Outcome.OK, [30.0, 20.0], "cuda:0", "cccccccccccc"
    )
    wider = {"emsize": 500, "nlayers": 2, "nhid": 500}
    _add_run(store, _config("b20-e500-l2-h500", 20, wider), Outcome.OK, [4.0, 3.0], "cpu", "dddddddddddd",
             foreign_cpu=0.49)  # fmt: skip
    db = sqlite3.connect(store.path)
    db.execute(
        "UPDATE runs SET queued_at = 1.7e9 + id, started_at = 1.7e9 + id, finished_at = 1.7e9 + 10 * id"
    )
    db.commit()
    db.close()
    return store


def _registry(store: ResultsStore, monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    monkeypatch.setattr("platform.python_version", lambda: "3.11.0")
    health = HealthBook()
    scoreboard = Scoreboard(health=health)
    for run in store.finished_runs():
        scoreboard.record(run)
    service = RunQueue(RunLedger(store, scoreboard.record), queue_size=4, grace=1.0)
    facts = DaemonFacts(
        host={
            "hostname": "test-host",
            "os": "Linux",
            "kernel": "6.1",
            "machine": "x86_64",
            "cpu": "Test CPU",
            "image": None,
            "memory_bytes": 2**34,
            "logical_cpus": 8,
        },
        torch_version="2.0.0-test",
        devices=[CPU_DEVICE],
        schedule_periods={("vae", "bs128"): 21600.0, ("vae", "bs5120"): 21600.0},
        next_fire=lambda: {"vae": 1.7e9 + 3600},
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BenchdCollector(scoreboard, service, store, lambda: facts, health=health))
    return registry


def test_the_whole_exposition_matches_the_golden_file(store: ResultsStore, monkeypatch) -> None:
    text = generate_latest(_registry(store, monkeypatch)).decode()
    if os.environ.get("BENCHD_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_golden_exposition_is_the_declared_table(store: ResultsStore, monkeypatch) -> None:
    """Every family the collector writes is declared with this type, help and labels (node_exporter pins the
    output; the table pins what the output may hold)."""
    families = list(text_string_to_metric_families(generate_latest(_registry(store, monkeypatch)).decode()))
    written = [f for f in families if f.name.startswith("benchd_")]
    assert len(written) > 40
    by_family = {m.name if m.kind == contract.INFO else m.family: m for m in contract.METRICS}
    exposed_type = {contract.INFO: "gauge", contract.STATESET: "gauge"}
    for written_family in written:
        declared = by_family[written_family.name]
        assert declared.help == written_family.documentation, declared.name
        assert exposed_type.get(declared.kind, declared.kind) == written_family.type, declared.name
        for sample in written_family.samples:
            assert set(sample.labels) - {"le"} == set(declared.labels), (declared.name, sample.labels)


def test_each_schedules_next_firing_is_exported(store: ResultsStore, monkeypatch) -> None:
    value = _registry(store, monkeypatch).get_sample_value
    assert value("benchd_schedule_next_timestamp_seconds", {"schedule": "vae"}) == 1.7e9 + 3600


def test_results_of_the_last_ok_run(store: ResultsStore, monkeypatch) -> None:
    registry = _registry(store, monkeypatch)
    value = registry.get_sample_value
    series = {k: v for k, v in VAE.items() if k != "config"}  # outcomes are per series, results per config
    assert value("benchd_runs_total", {**series, "outcome": "ok"}) == 2
    assert value("benchd_last_epoch_duration_seconds", VAE) == pytest.approx(1.0)  # median of 0.9 and 1.1
    assert value("benchd_last_epoch_phase_seconds", {**VAE, "phase": "steps"}) == pytest.approx(0.75)
    assert value("benchd_last_epoch_phase_seconds", {**VAE, "phase": "data_wait"}) == pytest.approx(0.25)
    assert value("benchd_last_epoch_phase_seconds", {**VAE, "phase": "validation"}) is None
    assert value("benchd_epoch_duration_seconds_count", VAE) == 6  # every epoch of both runs
    assert value("benchd_epoch_fraction_ratio", VAE) == 0.5
    assert value("benchd_peak_device_memory_bytes", VAE) is None  # the CPU has no allocator: absent, not 0
    cuda = {
        "workload": "transformer",
        "preset": "b20-e200-l2-h200",
        "device": "cuda:0",
        "config": "cccccccccccc",
    }
    assert value("benchd_peak_device_memory_bytes", cuda) == 2**31


def test_a_failed_run_changes_the_outcome_but_keeps_the_last_ok_figures(store, monkeypatch) -> None:
    failed = {"workload": "vae", "preset": "bs5120", "device": "cpu"}
    value = _registry(store, monkeypatch).get_sample_value
    assert value("benchd_last_run_outcome", {**failed, "outcome": "oom"}) == 1
    assert value("benchd_last_run_outcome", {**failed, "outcome": "ok"}) == 0
    assert value("benchd_last_run_success", failed) == 0
    assert value("benchd_last_epoch_duration_seconds", {**failed, "config": "bbbbbbbbbbbb"}) is None
    assert value("benchd_runs_total", {**failed, "outcome": "error"}) is None


def test_the_store_health_metric_falls_when_a_write_fails(store: ResultsStore, monkeypatch) -> None:
    registry = _registry(store, monkeypatch)
    assert registry.get_sample_value("benchd_collector_up", {"collector": "store"}) == 1
    store._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a read-only or full disk
    with pytest.raises(sqlite3.OperationalError):
        store.finish(1, Outcome.ERROR, message="too late")
    assert registry.get_sample_value("benchd_collector_up", {"collector": "store"}) == 0
    store._db.execute("PRAGMA query_only = OFF")
    store.create_run(_config("bs128", 128), requested_device="cpu", benchd_version="0", sample_unit="images")
    assert registry.get_sample_value("benchd_collector_up", {"collector": "store"}) == 1


def _finished_run(config_id: str, seconds: float, finished_at: float, origin: str = "schedule") -> Run:
    epochs = [
        Epoch(0, seconds * 2, 100, 1, 0.0, None, None, 1.0),
        Epoch(1, seconds, 100, 1, 0.0, None, None, 1.0),
    ]
    return Run(
        id=int(finished_at), workload="vae", preset="bs128", config={"batch_size": 128, "epochs": 2},
        fraction=0.1, requested_device="cpu", state="finished", outcome="ok", message=None, stderr_tail=None,
        log_path=None, device="cpu", device_type="cpu", device_name="Test CPU", precision="float32",
        torch_version="2", benchd_version="0", driver_version=None, data_kind="synthetic", data_samples=60000,
        parameters=1, samples_per_epoch=100, sample_unit="images", peak_host_rss_bytes=None, queued_at=0.0,
        started_at=0.0, finished_at=finished_at, timeout_seconds=None, origin=origin, config_id=config_id,
        epochs=epochs,
    )  # fmt: skip


def test_a_config_change_starts_its_own_series_and_baseline() -> None:
    board = Scoreboard()
    for index, seconds in enumerate([10.0, 10.4, 9.6, 10.0]):
        board.record(_finished_run("tenth", seconds, 100.0 + index))
    board.record(_finished_run("full", 100.0, 200.0, origin="api"))
    tenth = board.results[("vae", "bs128", "cpu", "tenth")]
    full = board.results[("vae", "bs128", "cpu", "full")]
    assert tenth.epoch_seconds == 10.0 and full.epoch_seconds == 100.0  # the full epoch moved nothing
    assert tenth.baseline() == (pytest.approx(10.0), pytest.approx(0.04), 3)  # 10, 10.4, 9.6: MAD 0.4
    assert full.baseline() is None  # one run: nothing to compare with yet


def test_at_most_n_configs_per_series_scheduled_ones_kept_first() -> None:
    board = Scoreboard(configs_per_series=2)
    board.record(_finished_run("scheduled", 1.0, 1.0))
    for index in range(3):
        board.record(_finished_run(f"triggered-{index}", 1.0, 10.0 + index, origin="api"))
    assert sorted(k[3] for k in board.results) == ["scheduled", "triggered-2"]


def test_why_a_run_was_slow_is_exported_by_config(store: ResultsStore, monkeypatch) -> None:
    """Throttling, clocks, the power limit and the PCIe link of the config's last ok run on its GPU."""

    def epoch(index: int, throttled: dict[str, float], clock: float) -> Epoch:
        figures = {"throttle_seconds": throttled,
                   "mean_sm_clock_hertz": {"value": clock, "source": "sampled"},
                   "min_sm_clock_hertz": {"value": clock - 3e8, "source": "sampled"},
                   "power_limit_watts": {"value": 250.0, "source": "sampled"},
                   "pcie_link": {"generation": 3, "width": 8}}  # fmt: skip
        return Epoch(index, 10.0, 100, 10, 0.0, None, None, 1.0, {"domains": {"cuda:1": figures}})

    run = _finished_run("dddddddddddd", 10.0, 500.0)
    run.device, run.device_type = "cuda:1", "cuda"
    run.epochs = [epoch(0, {}, 1.9e9), epoch(1, {"sw_power_cap": 4.0}, 1.4e9), epoch(2, {"sw_power_cap": 2.0,
                  "hw_thermal_slowdown": 1.0}, 1.6e9)]  # fmt: skip
    assert run.slowdown_summary()["throttle_seconds"] == {"hw_thermal_slowdown": 0.5, "sw_power_cap": 3.0}
    board = Scoreboard()
    board.record(run)
    registry = CollectorRegistry(auto_describe=False)
    queue = RunQueue(RunLedger(store, board.record), queue_size=1, grace=1.0)
    registry.register(BenchdCollector(board, queue, store, DaemonFacts))
    value = registry.get_sample_value
    labels = {"workload": "vae", "preset": "bs128", "device": "cuda:1", "config": "dddddddddddd"}
    assert value("benchd_epoch_throttle_seconds", {**labels, "reason": "sw_power_cap"}) == 3.0
    assert value("benchd_epoch_throttle_seconds", {**labels, "reason": "hw_thermal_slowdown"}) == 0.5
    assert value("benchd_epoch_mean_sm_clock_hertz", labels) == pytest.approx(1.5e9)  # median of the two
    assert value("benchd_epoch_min_sm_clock_hertz", labels) == pytest.approx(1.1e9)
    assert value("benchd_epoch_power_limit_watts", labels) == 250.0
    assert (
        value("benchd_epoch_pcie_link_generation", labels),
        value("benchd_epoch_pcie_link_width", labels),
    ) == (3, 8)
    assert value("benchd_epoch_mean_memory_clock_hertz", labels) is None  # not reported: absent
    from benchd.cli.report import slowdown_line

    why = slowdown_line(run.slowdown_summary()) or ""
    assert "sw power cap 3.0 s" in why and "power limit 250 W" in why and "PCIe gen 3 x8" in why


def _snapshot(store: ResultsStore) -> Snapshot:
    """What the daemon's status reads, built from the store's finished runs as at start."""
    scoreboard = Scoreboard()
    for run in store.finished_runs():
        scoreboard.record(run)
    return scoreboard.snapshot()


def test_status_says_a_config_whose_runs_vary_is_unstable(store: ResultsStore) -> None:
    """The two ok VAE runs' representative epochs (1.1 s, 1.0 s) vary by 6.7%: over the 5% threshold."""
    from benchd.server.daemon import _last

    board = _snapshot(store)
    key = ("vae", "bs128", "cpu")
    last = _last(key, board.series[key], board)
    assert last["unstable"] is True and last["variation_ratio"] == pytest.approx(0.0673, abs=1e-4)
    assert last["mfu_ratio"] == pytest.approx(3.36e9 / 1.0 / 1e11)  # the last run's 1.0 s epoch
    transformer = ("transformer", "b20-e200-l2-h200", "cuda:0")
    alone = _last(transformer, board.series[transformer], board)
    assert alone["unstable"] is None and alone["mfu_ratio"] is None  # one run; no published peak


def test_a_contended_run_is_shown_on_families_of_its_own_and_never_as_a_clean_figure(
    store: ResultsStore, monkeypatch
) -> None:
    """On a busy host the contended figure used to vanish: no epoch duration, no config info at all."""
    value = _registry(store, monkeypatch).get_sample_value
    series = {"workload": "transformer", "preset": "b20-e500-l2-h500", "device": "cpu"}
    labels = {**series, "config": "dddddddddddd"}
    assert value("benchd_last_contended_epoch_duration_seconds", labels) == 3.0
    assert value("benchd_contended_runs_total", series) == 1
    assert value("benchd_runs_total", {**series, "outcome": "ok"}) == 1
    assert value("benchd_config_info", {"config": "dddddddddddd", **CONFIG_INFO_DDDD}) == 1
    for clean in ("benchd_last_epoch_duration_seconds", "benchd_baseline_epoch_duration_seconds"):
        assert value(clean, labels) is None
    assert value("benchd_epoch_duration_seconds_count", labels) is None
    assert value("benchd_last_success_timestamp_seconds", series) is None  # staleness counts clean runs


CONFIG_INFO_DDDD = {
    "batch_size": "20", "channels_last": "false", "compile": "false", "deterministic": "false",
    "data": "synthetic", "data_scale": "1",
    "epochs": "2", "fraction": "0.5", "options": "emsize=500,nhid=500,nlayers=2", "precision": "",
    "preset": "b20-e500-l2-h500", "suite": "", "timing": "reference", "workers": "published",
    "workload": "transformer",
}  # fmt: skip


def test_status_says_why_a_series_has_no_clean_figure(store: ResultsStore) -> None:
    """`benchd status` said "last run ok" and "no ok run yet" at once for a series whose ok runs met load."""
    from benchd.cli.remote import _last_line
    from benchd.server.daemon import _last

    snapshot = _snapshot(store)
    key = ("transformer", "b20-e500-l2-h500", "cpu")
    last = _last(key, snapshot.series[key], snapshot)
    assert (last["contended"], last["contended_runs"], last["contention"]) == (True, 1, "foreign CPU 49%")
    line = _last_line(last)
    assert line.startswith("last run ok (contended)")
    assert "1 run contended (foreign CPU 49%, last 3.000 s/epoch); no clean figure yet" in line
    assert "no ok run yet" not in line
    clean = ("vae", "bs128", "cpu")
    assert "contended" not in _last_line(_last(clean, snapshot.series[clean], snapshot))


def test_device_verdicts_are_exported_with_their_reason(tmp_path: Path, monkeypatch) -> None:
    """Three ok runs make the own band; two of the next three at 1.5x turn the CPU degraded; its reason
    names the config and the band, and the ratio and start are there."""
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    for seconds in (1.0, 1.02, 0.98, 1.5, 1.0, 1.5):
        _add_run(store, _config("bs128", 128), Outcome.OK, [2.0, seconds, seconds], "cpu", VAE_CONFIG)
    value = _registry(store, monkeypatch).get_sample_value
    assert value("benchd_device_health", {"device": "cpu", "state": "degraded"}) == 1.0
    assert value("benchd_device_health", {"device": "cpu", "state": "healthy"}) == 0.0
    labels = {"device": "cpu", "state": "degraded", "band": "own", "workload": "vae", "preset": "bs128",
              "config": VAE_CONFIG}  # fmt: skip
    assert value("benchd_device_health_info", labels) == 1.0
    assert value("benchd_device_health_ratio", {"device": "cpu"}) == pytest.approx(1.5)
    first_slow = store.get_run(4)
    assert first_slow is not None
    assert value("benchd_device_health_since_timestamp_seconds", {"device": "cpu"}) == first_slow.finished_at
