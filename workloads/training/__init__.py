"""One trainer per workload: its data pipeline, model, optimizer and training step."""

from __future__ import annotations

from benchd.workloads.training.base import Trainer, TrainerSpec


def build_trainer(spec: TrainerSpec) -> Trainer:
    """Import only the chosen workload's module: building one must not pay for the others."""
    if spec.workload == "dcgan":
        from benchd.workloads.training.dcgan import DcganTrainer as TrainerClass
    elif spec.workload == "siamese":
        from benchd.workloads.training.siamese import SiameseTrainer as TrainerClass
    elif spec.workload == "transformer":
        from benchd.workloads.training.transformer import TransformerTrainer as TrainerClass
    elif spec.workload == "vae":
        from benchd.workloads.training.vae import VaeTrainer as TrainerClass
    else:
        raise ValueError(f"unknown workload {spec.workload!r}")
    return TrainerClass(spec)


__all__ = ["Trainer", "TrainerSpec", "build_trainer"]
