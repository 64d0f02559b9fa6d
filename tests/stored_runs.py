"""Finished runs written into a real results store, for the commands that judge a store's history."""

from __future__ import annotations

from benchd.results.model import Outcome
from benchd.results.store import ResultsStore

VAE_CONFIG_ID = "abcdefabcdef"
VAE_CONFIG = {"workload": "vae", "preset": "bs128", "batch_size": 128, "options": {}, "epochs": 2,
              "fraction": 0.05, "workers": None, "seed": 1, "timing": "reference"}  # fmt: skip


def add_run(
    store: ResultsStore,
    seconds: float | None,
    outcome: Outcome = Outcome.OK,
    device: str = "cpu",
    host: str = "test-host",
) -> int:
    """One finished vae run on `device` whose representative epoch took `seconds` (its first epoch is a
    warm-up, as in real runs); a failed run has no epochs."""
    run_id = store.create_run(
        VAE_CONFIG, requested_device=device, benchd_version="0.0.0", sample_unit="images"
    )
    store.mark_running(run_id, f"/logs/run-{run_id}.log")
    started = {"device": device, "device_type": device.partition(":")[0], "device_name": "Test CPU",
               "torch_version": "2.0.0-test", "timing": "reference", "workers": 0,
               "data": {"kind": "synthetic", "samples": 60000, "scale": 1.0}}  # fmt: skip
    store.record_started(run_id, started, VAE_CONFIG_ID, {"hostname": host})
    for index, duration in enumerate([] if seconds is None else [seconds * 2, seconds]):
        event = {"t": 100.0 + index, "epoch": index, "duration": duration, "samples": 3000, "steps": 24,
                 "data_wait": 0.0, "peak_allocated_bytes": None, "peak_reserved_bytes": None,
                 "loss": 1.5}  # fmt: skip
        store.add_epoch(run_id, event, start_t=float(index))
    store.finish(run_id, outcome, message=None if outcome == Outcome.OK else "test failure")
    return run_id
