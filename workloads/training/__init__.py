"""One trainer per workload: its data pipeline, model, optimizer and training step."""

from __future__ import annotations

import importlib

from benchd.catalog import get_workload
from benchd.workloads.training.base import Trainer, TrainerSpec


def build_trainer(spec: TrainerSpec) -> Trainer:
    """Import only the chosen workload's trainer (the catalog names it): building one must not pay
    for the others."""
    module, _, name = get_workload(spec.workload).trainer.partition(":")
    trainer_class = getattr(importlib.import_module(module), name)
    return trainer_class(spec)


__all__ = ["Trainer", "TrainerSpec", "build_trainer"]
