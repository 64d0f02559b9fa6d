"""The harness's timed epoch and event stream, in-process with a stand-in trainer."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest
import torch

from benchd import catalog, protocol
from benchd.workloads import harness
from benchd.workloads.device import AllocatorPeaks
from benchd.workloads.failures import classify
from benchd.workloads.training.base import Trainer

DATA_DELAY = 0.02


class SlowDataTrainer(Trainer):
    """Each batch takes DATA_DELAY to arrive: the epoch's data-wait must account for it."""

    parameters = 1
    samples_per_epoch = 12
    steps_per_epoch = 3

    def __init__(self) -> None:
        self.weight = torch.zeros(())

    def batches(self):
        for _ in range(self.steps_per_epoch):
            threading.Event().wait(DATA_DELAY)  # stands in for slow I/O, not for synchronization
            yield torch.ones(4)

    def stateful(self) -> list:
        return []

    def probe_batches(self) -> list:
        return [(next(iter(self.batches())), self.steps_per_epoch)]

    def step(self, batch, index):
        self.weight += batch.sum()
        return self.weight.clone(), len(batch)


def read_events(read_fd: int) -> list[dict]:
    with os.fdopen(read_fd, "rb") as handle:
        return [protocol.decode(line) for line in handle.read().splitlines()]


def test_timed_epoch_reports_duration_samples_wait_and_loss() -> None:
    read_fd, write_fd = os.pipe()
    events = protocol.EventWriter(write_fd)
    trainer = SlowDataTrainer()
    device = torch.device("cpu")
    harness._timed_epoch(0, trainer, device, AllocatorPeaks(device), events)
    events.close()
    start, end = [e for e in read_events(read_fd) if e["event"] != "progress"]
    assert (start["event"], end["event"]) == ("epoch_start", "epoch_end")
    assert end["duration"] == end["t"] - start["t"]
    assert end["samples"] == 12 and end["steps"] == 3
    assert end["data_wait"] >= 3 * DATA_DELAY
    assert end["duration"] >= end["data_wait"]
    assert end["loss"] == (4 + 8 + 12) / 3
    assert end["peak_allocated_bytes"] is None  # the CPU has no device allocator
    assert end["phases"]["data_wait"] == end["data_wait"]
    assert end["phases"]["data_wait"] + end["phases"]["steps"] == pytest.approx(end["duration"])
    assert "validation" not in end["phases"] and end["validation_loss"] is None


def test_real_workload_emits_the_documented_events(small_data_dir: Path) -> None:
    read_fd, write_fd = os.pipe()
    vae = catalog.get_workload("vae")
    config = catalog.build_config(
        vae, vae.preset("bs128"), batch_size=64, fraction=0.5, epochs=2, seed=7, workers=0
    )
    spec = protocol.RunSpec(config, "auto", small_data_dir).to_json()
    assert harness.guarded(harness.run_workload, spec, protocol.EventWriter(write_fd)) == 0
    os.close(write_fd)
    events = [e for e in read_events(read_fd) if e["event"] != "progress"]
    names = [e["event"] for e in events]
    assert names == ["started", "epoch_start", "epoch_end", "epoch_start", "epoch_end", "finished"]
    started = events[0]
    assert started["device"] == "cpu" and started["parameters"] == 652_824 and started["seed"] == 7
    assert started["data"]["kind"] == "synthetic" and started["data"]["samples"] == 600
    assert started["samples_per_epoch"] == 320  # 5 of the 10 batches of 600 images
    assert all(e["samples"] == 320 for e in events if e["event"] == "epoch_end")
    times = [e["t"] for e in events]
    assert times == sorted(times)


def test_failures_are_classified() -> None:
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory"))[0] == "oom"
    assert classify(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))[0] == "oom"
    assert classify(MemoryError())[0] == "oom"
    kind, message = classify(RuntimeError("bad op\nsecond line"))
    assert (kind, message) == ("error", "RuntimeError: bad op")


def test_the_run_spec_crosses_as_one_typed_definition_and_a_bad_one_fails_the_run() -> None:
    gpt = catalog.get_workload("gpt")
    config = catalog.build_config(
        gpt, gpt.preset("b16-d384-l6-s256"), options={"layers": 2}, precision="amp-bf16"
    )
    spec = protocol.RunSpec(config, "cpu", Path("/data"), Path("/data/scratch"))
    assert protocol.RunSpec.from_json(spec.to_json()) == spec
    values = json.loads(spec.to_json())
    for change, problem in [
        (
            {"options": {"layers": 2, "width": 384, "heads": 5, "context": 256}},
            "options.heads: width 384 does not",
        ),
        (
            {"options": {"layers": 0, "width": 384, "heads": 6, "context": 256}},
            "options.layers: must be between",
        ),
        ({"options": {"nhid": 8}}, "gpt has no option 'nhid'"),
        ({"workload": "resnet"}, "unknown workload 'resnet'"),
        ({"batch_size": "16"}, "batch_size: must be int, got '16'"),
        ({"precision": "fp8"}, "precision: must be one of fp32"),
        ({"scratch_dir": 3}, "scratch_dir: must be a string or null"),
    ]:
        with pytest.raises(protocol.ProtocolError, match=re.escape(problem)):
            protocol.RunSpec.from_json(json.dumps(values | change))
    del values["epochs"]
    with pytest.raises(protocol.ProtocolError, match="epochs: is required"):
        protocol.RunSpec.from_json(json.dumps(values))
    # In the child, a spec that does not parse is a failed run like any other, not a crash without events.
    read_fd, write_fd = os.pipe()
    assert harness.guarded(harness.run_workload, "[1]", protocol.EventWriter(write_fd)) == harness.EXIT_FAILED
    os.close(write_fd)
    (failed,) = read_events(read_fd)
    assert failed["event"] == "failed" and "bad run spec: a run spec is a JSON object" in failed["message"]
