"""What the harness needs from a workload, and the data-loading helpers they share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler


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


class Trainer(ABC):
    """A workload ready to train: `step` is everything inside the timed region but data loading."""

    parameters: int
    samples_per_epoch: int
    steps_per_epoch: int

    @abstractmethod
    def batches(self) -> Iterable[Any]:
        """A fresh iterable over this epoch's batches (its fraction of the full epoch)."""

    @abstractmethod
    def step(self, batch: Any) -> tuple[torch.Tensor, int]:
        """Train on one batch; return its loss (detached, left on the device) and its samples."""

    def end_epoch(self) -> None:  # noqa: B027 - most workloads have nothing to do here
        """Per-epoch bookkeeping outside the timed region (learning-rate schedules)."""


def parameter_count(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def steps_for_fraction(full_steps: int, fraction: float) -> int:
    return max(1, math.ceil(full_steps * fraction))


def already_batched(batch: Any) -> Any:
    """collate_fn for datasets whose __getitems__ returns a whole batch."""
    return batch


class SampledLoader:
    """A shuffled DataLoader over `fraction` of a map-style dataset.

    The sample count is cut to whole batches of the fractional epoch, so a
    fraction of 0.05 runs 5% of the steps, and the run records exactly how
    many samples an epoch trained on.
    """

    def __init__(
        self,
        dataset: Dataset,
        spec: TrainerSpec,
        *,
        batched_dataset: bool,
        drop_last: bool = False,
    ) -> None:
        size = len(dataset)  # type: ignore[arg-type]
        full_steps = size // spec.batch_size if drop_last else math.ceil(size / spec.batch_size)
        if full_steps == 0:
            raise ValueError(f"dataset of {size} samples is smaller than one batch of {spec.batch_size}")
        self.steps = steps_for_fraction(full_steps, spec.fraction)
        self.samples = min(size, self.steps * spec.batch_size)
        generator = torch.Generator().manual_seed(spec.seed)
        self.loader = DataLoader(
            dataset,
            batch_size=spec.batch_size,
            sampler=RandomSampler(dataset, num_samples=self.samples, generator=generator),
            num_workers=spec.workers,
            pin_memory=spec.device.type == "cuda",
            persistent_workers=spec.workers > 0,
            drop_last=drop_last,
            collate_fn=already_batched if batched_dataset else None,
        )


class LoaderTrainer(Trainer):
    """A trainer whose epoch is one pass of a SampledLoader: size and batches come from it."""

    data: SampledLoader

    @property
    def samples_per_epoch(self) -> int:  # type: ignore[override]
        return self.data.samples

    @property
    def steps_per_epoch(self) -> int:  # type: ignore[override]
        return self.data.steps

    def batches(self) -> Iterable[Any]:
        return self.data.loader
