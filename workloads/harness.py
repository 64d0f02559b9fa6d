"""The child process: runs one workload preset on one device and reports events.

Invoked by the parent as ``python -m benchd.workloads.harness --spec JSON
--events-fd N``, JSON being a `protocol.RunSpec`. Everything the parent
learns arrives as events on fd N; a failure (a spec that does not parse
included) is classified here, where the exception is still an exception,
and reported as a `failed` event before the process exits non-zero.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchd import protocol
from benchd.protocol import EventWriter, RunSpec

Body = Callable[[str, EventWriter], None]
"""What the child runs, given the --spec text: the harness's run_workload; a test's misbehaving twin."""

PROGRESS_INTERVAL_SECONDS = 0.5
EXIT_FAILED = 1
INDUCTOR_CACHE = "inductor-cache"  # in the data directory: compiled kernels outlive /tmp and reboots


def run_workload(spec_json: str, events: EventWriter) -> None:
    spec = RunSpec.from_json(spec_json)
    with _scratch_dir(spec.scratch_dir) as scratch:
        _run_in(spec, events, scratch)


@contextmanager
def _scratch_dir(requested: Path | None) -> Iterator[Path]:
    """Where side work writes; the parent also removes the one it named if the child dies first."""
    path = requested or Path(tempfile.mkdtemp(prefix="benchd-scratch-"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run_in(spec: RunSpec, events: EventWriter, scratch: Path) -> None:
    config = spec.config
    if config.compile:  # read by Inductor when it compiles; an operator's own setting wins
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(spec.data_dir / INDUCTOR_CACHE))
    import numpy as np
    import torch

    from benchd.catalog import get_workload
    from benchd.datasets import layout
    from benchd.datasets.formats import get_format
    from benchd.workloads import device as devices
    from benchd.workloads.training import TrainerSpec, build_trainer, determinism
    from benchd.workloads.training.compute import check_steps, compile_warm_up, compute_facts

    workload = get_workload(config.workload)
    if config.deterministic:
        determinism.prepare_environment()
    info = devices.resolve(spec.device)
    # Generates a synthetic set on first use, as the daemon never does work this heavy itself.
    data = layout.ensure(spec.data_dir, get_format(workload.dataset))
    device = torch.device(info.id)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.deterministic:
        determinism.enable(config.precision)
    loader = workload.loader
    trainer = build_trainer(
        TrainerSpec(
            workload=config.workload,
            batch_size=config.batch_size,
            options=config.options,
            fraction=config.fraction,
            workers=loader.workers_for(info.type, sys.platform) if config.workers is None else config.workers,
            seed=config.seed,
            data_path=Path(data.path),
            device=device,
            timing=config.timing,
            pin_memory=loader.pin_memory(info.type),
            scratch_dir=scratch,
            precision=config.precision,
            compile=config.compile,
            channels_last=config.channels_last,
            deterministic=config.deterministic,
        )
    )
    compute: dict[str, Any] = {}  # compile time now; FLOPs and the peak once the epochs are timed
    if config.compile:
        compute["compile_seconds"] = compile_warm_up(trainer, device)
    elif config.deterministic:  # an operation without a deterministic kernel fails here, not in epoch 1
        check_steps(trainer, device)
    driver = devices.driver_version(device)
    started = protocol.Started(
        event="started",
        t=protocol.now(),
        pid=os.getpid(),
        device=info.id,
        device_type=info.type,
        device_name=info.name,
        device_total_memory_bytes=info.total_memory_bytes,
        torch_version=torch.__version__,
        driver_version=driver,
        precision=trainer.precision.reported,
        timing=config.timing,
        workers=trainer.timed_workers,
        parameters=trainer.parameters,
        samples_per_epoch=trainer.samples_per_epoch,
        steps_per_epoch=trainer.steps_per_epoch,
        seed=config.seed,
        data=data.to_json(),
        system=devices.describe(device),
        compute=compute,
    )
    if config.deterministic:
        stack = determinism.stack(device, info.name, driver, trainer.precision.reported)
        started["determinism"] = {"stack": stack, "stack_id": determinism.stack_id(stack)}
    events.emit(started)
    peaks = devices.AllocatorPeaks(device)
    fingerprint = _Fingerprint(trainer, spec.inject_bitflip) if config.deterministic else None
    for epoch in range(config.epochs):
        _timed_epoch(epoch, trainer, device, peaks, events, fingerprint)
        trainer.end_epoch()
    finished = protocol.Finished(event="finished", t=protocol.now())
    finished["compute"] = {**compute, **compute_facts(trainer, device, info.name)}
    if fingerprint is not None:
        finished["weights_sha256"] = determinism.weights_sha256(trainer)
        if fingerprint.flipped is not None:
            finished["bitflip"] = fingerprint.flipped
    events.emit(finished)


class _Fingerprint:
    """A deterministic run's per-step losses, and the selftest's bit flip before global step `flip_at`."""

    def __init__(self, trainer, flip_at: int | None) -> None:
        from benchd.workloads.training.determinism import LossBits

        self.trainer, self.flip_at = trainer, flip_at
        self.losses = LossBits()
        self.step = 0  # across epochs
        self.flipped: str | None = None

    def before_step(self) -> None:
        if self.step == self.flip_at:
            from benchd.workloads.training.determinism import flip_bit

            self.flipped = f"before step {self.step}: {flip_bit(self.trainer)}"

    def after_step(self, loss) -> None:
        self.losses.add(loss)
        self.step += 1

    def read(self) -> str:
        """The epoch's loss bits, read from the device once its clock has stopped."""
        return self.losses.hex()


class _PhaseClock:
    """Seconds spent in each phase of an epoch that is not the training steps.

    Each phase is bracketed by device synchronizations, so queued kernels of
    the steps before it are not billed to it. The steps' own phase is what
    remains of the epoch; a phase that never ran is absent, not zero.
    """

    def __init__(self, device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        from benchd.workloads.device import synchronize

        synchronize(self.device)
        started = time.monotonic()
        yield  # an exception here fails the epoch: there is no phase to record
        synchronize(self.device)
        self.add(phase, time.monotonic() - started)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def with_steps(self, duration: float) -> dict[str, float]:
        """Every phase, the steps taking what the others leave of the epoch's duration."""
        return {protocol.PHASE_STEPS: max(0.0, duration - sum(self.seconds.values())), **self.seconds}


def _timed_epoch(
    epoch, trainer, device, peaks, events: EventWriter, fingerprint: _Fingerprint | None = None
) -> None:
    """One epoch as the timing mode defines it, clocked between two device synchronizations."""
    import torch

    from benchd.workloads.device import synchronize

    peaks.reset()
    loss_sum = torch.zeros((), device=device)
    samples = steps = 0
    data_wait = 0.0
    phases = _PhaseClock(device)
    end = object()
    synchronize(device)
    started = time.monotonic()
    events.emit(protocol.EpochStart(event="epoch_start", t=started, epoch=epoch))
    next_progress = started + PROGRESS_INTERVAL_SECONDS
    batches = iter(trainer.batches())
    while True:
        waiting = time.monotonic()
        batch = next(batches, end)
        now = time.monotonic()
        data_wait += now - waiting
        if batch is end:
            break
        if fingerprint is not None:
            fingerprint.before_step()
        loss, count = trainer.step(batch, steps)
        if fingerprint is not None:
            fingerprint.after_step(loss)
        loss_sum += loss
        samples += count
        if trainer.side_work_due(steps):
            with phases.timing(protocol.PHASE_SIDE_WORK):
                trainer.side_work(steps)
        steps += 1
        if peaks.samples_per_step:
            peaks.sample()
        if now >= next_progress:
            events.emit(
                protocol.Progress(
                    event="progress", t=now, epoch=epoch, step=steps, steps=trainer.steps_per_epoch
                )
            )
            next_progress = now + PROGRESS_INTERVAL_SECONDS
    phases.add(protocol.PHASE_DATA_WAIT, data_wait)
    validation_loss = None
    if trainer.has_validation:
        with phases.timing(protocol.PHASE_VALIDATION):
            validation_loss = trainer.validate()
    if trainer.has_epoch_side_work:
        with phases.timing(protocol.PHASE_SIDE_WORK):
            trainer.epoch_side_work()
    synchronize(device)
    ended = time.monotonic()
    allocated, reserved = peaks.peaks()
    mean_loss = (loss_sum / max(steps, 1)).item()
    ended_event = protocol.EpochEnd(
        event="epoch_end",
        t=ended,
        epoch=epoch,
        duration=ended - started,
        samples=samples,
        steps=steps,
        data_wait=data_wait,
        phases=phases.with_steps(ended - started),
        validation_loss=validation_loss,
        peak_allocated_bytes=allocated,
        peak_reserved_bytes=reserved,
        loss=mean_loss,
    )
    if fingerprint is not None:
        ended_event["loss_bits"] = fingerprint.read()
    events.emit(ended_event)


def guarded(body: Body, spec_json: str, events: EventWriter) -> int:
    """Run `body`, turning any exception into a `failed` event and an exit code."""
    from benchd.workloads.failures import classify

    try:
        body(spec_json, events)
    except BaseException as exc:
        traceback.print_exc()
        try:
            kind, message = classify(exc)
        except Exception:  # a failed classification must not lose the failure
            kind, message = protocol.FAILURE_ERROR, f"{type(exc).__name__} (unclassified)"
        events.emit(protocol.Failed(event="failed", t=protocol.now(), kind=kind, message=message))
        return EXIT_FAILED
    return 0


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Never outlive the parent, even while generating a dataset: a `benchd run` killed with
    SIGKILL must not leave its child training on an unrecorded run.

    Linux: the kernel sends SIGKILL when the parent dies (prctl), and a parent
    already gone before that is noticed at once. Elsewhere the event pipe ends
    the child: its next event fails with a broken pipe.
    """
    parent = os.environ.get(protocol.PARENT_PID_VARIABLE, "")
    if sys.platform != "linux" or not parent.isdigit():
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(parent):
        os._exit(EXIT_FAILED)


def main(argv: list[str] | None = None, body: Body = run_workload) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchd.workloads.harness")
    parser.add_argument("--spec", required=True, help="the run's specification, as JSON")
    parser.add_argument("--events-fd", required=True, type=int, help="inherited pipe for events")
    args = parser.parse_args(argv)
    die_with_parent()
    faulthandler.enable()  # a segfault leaves a Python stack in the run's log
    events = EventWriter(args.events_fd)
    try:
        return guarded(body, args.spec, events)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
