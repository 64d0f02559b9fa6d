"""The child process: runs one workload preset on one device and reports events.

Invoked by the parent as ``python -m benchd.workloads.harness --spec JSON
--events-fd N``. Everything the parent learns arrives as events on fd N; a
failure is classified here, where the exception is still an exception, and
reported as a `failed` event before the process exits non-zero.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchd import protocol
from benchd.protocol import EventWriter

Body = Callable[[dict[str, Any], EventWriter], None]

PROGRESS_INTERVAL_SECONDS = 0.5
EXIT_FAILED = 1


def run_workload(spec: dict[str, Any], events: EventWriter) -> None:
    import numpy as np
    import torch

    from benchd.workloads import device as devices
    from benchd.workloads.datasets import layout
    from benchd.workloads.datasets.formats import get_format
    from benchd.workloads.training import TrainerSpec, build_trainer

    info = devices.resolve(spec["device"])
    # Generates a synthetic set on first use, as the daemon never does work this heavy itself.
    data = layout.ensure(Path(spec["data_dir"]), get_format(spec["dataset"]))
    device = torch.device(info.id)
    seed = int(spec["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    trainer = build_trainer(
        TrainerSpec(
            workload=spec["workload"],
            batch_size=int(spec["batch_size"]),
            options=spec.get("options", {}),
            fraction=float(spec["fraction"]),
            workers=int(spec["workers"]),
            seed=seed,
            data_path=Path(data.path),
            device=device,
        )
    )
    events.emit(
        protocol.STARTED,
        device=info.id,
        device_type=info.type,
        device_name=info.name,
        device_total_memory_bytes=info.total_memory_bytes,
        torch_version=torch.__version__,
        driver_version=devices.driver_version(device),
        precision="float32",
        parameters=trainer.parameters,
        samples_per_epoch=trainer.samples_per_epoch,
        steps_per_epoch=trainer.steps_per_epoch,
        seed=seed,
        data=data.to_json(),
    )
    peaks = devices.AllocatorPeaks(device)
    for epoch in range(int(spec["epochs"])):
        _timed_epoch(epoch, trainer, device, peaks, events)
        trainer.end_epoch()
    events.emit(protocol.FINISHED)


def _timed_epoch(epoch, trainer, device, peaks, events: EventWriter) -> None:
    """One training pass, clocked between two device synchronizations."""
    import torch

    from benchd.workloads.device import synchronize

    peaks.reset()
    loss_sum = torch.zeros((), device=device)
    samples = steps = 0
    data_wait = 0.0
    end = object()
    synchronize(device)
    started = time.monotonic()
    events.emit(protocol.EPOCH_START, t=started, epoch=epoch)
    next_progress = started + PROGRESS_INTERVAL_SECONDS
    batches = iter(trainer.batches())
    while True:
        waiting = time.monotonic()
        batch = next(batches, end)
        now = time.monotonic()
        data_wait += now - waiting
        if batch is end:
            break
        loss, count = trainer.step(batch)
        loss_sum += loss
        samples += count
        steps += 1
        if peaks.samples_per_step:
            peaks.sample()
        if now >= next_progress:
            events.emit(protocol.PROGRESS, t=now, epoch=epoch, step=steps, steps=trainer.steps_per_epoch)
            next_progress = now + PROGRESS_INTERVAL_SECONDS
    synchronize(device)
    ended = time.monotonic()
    allocated, reserved = peaks.peaks()
    mean_loss = (loss_sum / max(steps, 1)).item()
    events.emit(
        protocol.EPOCH_END,
        t=ended,
        epoch=epoch,
        duration=ended - started,
        samples=samples,
        steps=steps,
        data_wait=data_wait,
        peak_allocated_bytes=allocated,
        peak_reserved_bytes=reserved,
        loss=mean_loss,
    )


def guarded(body: Body, spec: dict[str, Any], events: EventWriter) -> int:
    """Run `body`, turning any exception into a `failed` event and an exit code."""
    from benchd.workloads.failures import classify

    try:
        body(spec, events)
    except BaseException as exc:
        traceback.print_exc()
        kind, message = classify(exc)
        events.emit(protocol.FAILED, kind=kind, message=message)
        return EXIT_FAILED
    return 0


def main(argv: list[str] | None = None, body: Body = run_workload) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchd.workloads.harness")
    parser.add_argument("--spec", required=True, help="the run's specification, as JSON")
    parser.add_argument("--events-fd", required=True, type=int, help="inherited pipe for events")
    args = parser.parse_args(argv)
    faulthandler.enable()  # a segfault leaves a Python stack in the run's log
    events = EventWriter(args.events_fd)
    try:
        return guarded(body, json.loads(args.spec), events)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
