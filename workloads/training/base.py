"""What the harness needs from a workload, and the data-loading helpers they share.

A trainer runs in one of two timings (docs/workloads.md). Reference timing
reproduces what the published comparison put inside its timer: the example
scripts' own data pipelines, their per-step `.item()` reads and log lines,
and their side work (validation, image grids, checkpoints). Device timing
keeps the data on the device and times the training steps alone.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from benchd.catalog import TIMING_REFERENCE
from benchd.workloads.training.precision import FP32, Precision


@dataclass(frozen=True)
class TrainerSpec:
    workload: str
    batch_size: int
    options: Mapping[str, int]
    fraction: float
    workers: int
    seed: int
    data_path: Path
    device: torch.device
    timing: str = TIMING_REFERENCE
    pin_memory: bool = False
    scratch_dir: Path | None = None  # where side work writes (images, checkpoints); the parent removes it
    log: TextIO = sys.stderr  # the run's log file: the reference's log lines go here
    precision: str = FP32  # precision.py
    compile: bool = False  # torch.compile the models (compute.py warms them up before the timer)
    channels_last: bool = False  # NHWC weights and images (the convolutional workloads)
    deterministic: bool = False  # seeded loader streams too (training/determinism.py)

    @property
    def reference(self) -> bool:
        return self.timing == TIMING_REFERENCE

    def prepared(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` in the memory format and execution mode the run asks for.

        Compiled in place (Module.compile), not wrapped: its state_dict keys and
        checkpoints stay those of the eager model.
        """
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if self.compile:
            module.compile()
        return module

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """An image batch in the memory format the run asks for."""
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch


class Trainer(ABC):
    """A workload ready to train.

    The harness times, between two device synchronizations: every batch of
    `batches()` through `step()` with the side work due after a step, then
    `validate()` and `epoch_side_work()` where the trainer has them (set per
    instance, since the timing decides).
    """

    parameters: int
    samples_per_epoch: int
    steps_per_epoch: int
    precision: Precision
    log: StepLog
    timed_workers: int = 0
    """DataLoader worker processes feeding the timed region."""
    has_validation: bool = False
    has_epoch_side_work: bool = False

    @abstractmethod
    def batches(self) -> Iterable[Any]:
        """A fresh iterable over this epoch's batches (its fraction of the full epoch)."""

    @abstractmethod
    def step(self, batch: Any, index: int) -> tuple[torch.Tensor, int]:
        """Train on batch `index`; return its loss (detached, left on the device) and its samples."""

    def side_work_due(self, index: int) -> bool:
        """Whether side work follows step `index` (the reference DCGAN's image grids)."""
        return False

    def side_work(self, index: int) -> None:  # noqa: B027 - only reference DCGAN has any
        """The side work due after step `index`."""

    def validate(self) -> float:
        """The validation pass timed inside the epoch (the reference transformer): its mean loss."""
        raise NotImplementedError(f"{type(self).__name__} has no validation pass")

    def epoch_side_work(self) -> None:  # noqa: B027 - only reference DCGAN has any
        """Work timed at the end of the epoch (the reference DCGAN's checkpoints)."""

    def end_epoch(self) -> None:  # noqa: B027 - most workloads have nothing to do here
        """Per-epoch bookkeeping outside the timed region (learning-rate schedules)."""

    @abstractmethod
    def stateful(self) -> list[Any]:
        """Everything a training step changes that has a state_dict (models, optimizers, the gradient
        scaler): what compute.py puts back after its probe steps."""

    @abstractmethod
    def probe_batches(self) -> list[tuple[Any, int]]:
        """One batch of each shape an epoch trains on, with how many of its steps have that shape.

        FLOP counts and compiled graphs depend on shapes, not values, so the
        batches may be made up; they must not draw from the epoch's data order.
        """

    def probe_side_passes(self) -> None:  # noqa: B027 - only workloads with side work have any
        """The forward passes an epoch makes besides its steps (validation, image grids), so that a
        compiled model has met them before the timer starts."""


class StepLog:
    """The reference scripts' per-step host reads and log lines.

    Every `.item()` waits for the device, which is part of what the published
    times measured; in device timing the log is disabled and nothing is read.
    Values are read every `read_every` steps, and a line is formatted and
    written to the run log every `line_every` steps; with no template, the
    reads alone (a script's running total).
    """

    def __init__(
        self,
        spec: TrainerSpec,
        template: str | None,
        *,
        read_every: int = 1,
        line_every: int = 1,
        skip_first: bool = False,
    ) -> None:
        self.enabled = spec.reference
        self.stream = spec.log
        self.template = template
        self.read_every = read_every
        self.line_every = line_every
        self.skip_first = skip_first

    def read(self, index: int, **values: torch.Tensor | float | None) -> dict[str, float | None]:
        """Read tensors to the host (floats already read pass through) and log the line when due."""
        if not self.enabled or index % self.read_every:
            return {}
        numbers = {name: v.item() if isinstance(v, torch.Tensor) else v for name, v in values.items()}
        if (
            self.template is not None
            and index % self.line_every == 0
            and not (self.skip_first and index == 0)
        ):
            print(self.template.format(step=index, **numbers), file=self.stream)
        return numbers


def parameter_count(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def steps_for_fraction(full_steps: int, fraction: float) -> int:
    return max(1, math.ceil(full_steps * fraction))


def already_batched(batch: Any) -> Any:
    """collate_fn for datasets whose __getitems__ returns a whole batch."""
    return batch


def epoch_size(size: int, batch_size: int, fraction: float, drop_last: bool = False) -> tuple[int, int]:
    """(steps, samples) of a fractional epoch over `size` samples: whole batches, the last maybe short."""
    full_steps = size // batch_size if drop_last else math.ceil(size / batch_size)
    if full_steps == 0:
        raise ValueError(f"dataset of {size} samples is smaller than one batch of {batch_size}")
    steps = steps_for_fraction(full_steps, fraction)
    return steps, min(size, steps * batch_size)


class SampledLoader:
    """A DataLoader over `fraction` of a map-style dataset, shuffled unless told otherwise.

    The sample count is cut to whole batches of the fractional epoch, so a
    fraction of 0.05 runs 5% of the steps, and the run records exactly how
    many samples an epoch trained on. Unshuffled, it takes the first samples
    in order, as a reference script without `shuffle=True` did.
    """

    def __init__(
        self,
        dataset: Dataset,
        spec: TrainerSpec,
        *,
        batched_dataset: bool,
        drop_last: bool = False,
        shuffle: bool = True,
    ) -> None:
        size = len(cast(Sized, dataset))
        self.steps, self.samples = epoch_size(size, spec.batch_size, spec.fraction, drop_last)
        self.batch_size = spec.batch_size
        # Deterministic runs seed the workers and the shuffling from generators of their own; otherwise
        # the sampler draws each epoch's order from the global stream (seeded by the harness), as the
        # scripts' `shuffle=True` did: their operations, and the same order for the same seed.
        workers_seed = torch.Generator().manual_seed(spec.seed) if spec.deterministic else None
        order_seed = torch.Generator().manual_seed(spec.seed) if spec.deterministic else None
        sampler: Iterable[int] = (
            RandomSampler(cast(Sized, dataset), num_samples=self.samples, generator=order_seed)
            if shuffle
            else range(self.samples)
        )
        self.loader = DataLoader(
            dataset,
            batch_size=spec.batch_size,
            sampler=sampler,
            num_workers=spec.workers,
            pin_memory=spec.pin_memory,
            persistent_workers=spec.workers > 0,
            drop_last=drop_last,
            collate_fn=already_batched if batched_dataset else None,
            generator=workers_seed,
        )


class DeviceResident:
    """Samples held on the device, gathered in a fresh random order each epoch.

    Device timing's data path: the samples are copied to the device once,
    before any epoch, so the timed region holds only an index gather and the
    training steps. `prepare` turns a gathered slice into the model's input.
    """

    def __init__(
        self,
        samples: torch.Tensor,
        spec: TrainerSpec,
        prepare: Callable[[torch.Tensor], Any],
    ) -> None:
        self.steps, self.samples = epoch_size(len(samples), spec.batch_size, spec.fraction)
        self.data = samples.to(spec.device)
        self.batch_size = spec.batch_size
        self.prepare = prepare
        self.generator = torch.Generator().manual_seed(spec.seed)

    def __iter__(self) -> Iterator[Any]:
        order = torch.randperm(len(self.data), generator=self.generator)[: self.samples]
        order = order.to(self.data.device)
        for start in range(0, self.samples, self.batch_size):
            yield self.prepare(self.data[order[start : start + self.batch_size]])


class LoaderTrainer(Trainer):
    """A trainer whose epoch is one pass of a SampledLoader or DeviceResident set."""

    data: SampledLoader | DeviceResident

    @property
    def samples_per_epoch(self) -> int:  # type: ignore[override]
        return self.data.samples

    @property
    def steps_per_epoch(self) -> int:  # type: ignore[override]
        return self.data.steps

    @property
    def timed_workers(self) -> int:  # type: ignore[override]
        return self.data.loader.num_workers if isinstance(self.data, SampledLoader) else 0

    def batches(self) -> Iterable[Any]:
        return self.data.loader if isinstance(self.data, SampledLoader) else self.data

    def probe_batches(self) -> list[tuple[Any, int]]:
        """The full batch, and the short last one when the epoch's samples do not fill it."""
        steps, samples, size = self.data.steps, self.data.samples, self.data.batch_size
        last = samples - (steps - 1) * size
        if last == size:
            return [(self.example_batch(size), steps)]
        return [(self.example_batch(size), steps - 1), (self.example_batch(last), 1)]

    @abstractmethod
    def example_batch(self, size: int) -> Any:
        """A made-up batch of `size` samples in the form `step` takes (for probe_batches)."""


def uniform(*shape: int) -> torch.Tensor:
    """Made-up values in [0, 1) from a generator of their own: the run's random streams stay untouched."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))
