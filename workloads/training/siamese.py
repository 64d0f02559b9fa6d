"""Siamese ResNet-18 on MNIST pairs: BCE, Adadelta lr 1.0, StepLR gamma 0.7 per epoch."""

from __future__ import annotations

import torch
from torch import nn

from benchd.workloads.models.siamese import SiameseNetwork
from benchd.workloads.training.base import LoaderTrainer, SampledLoader, TrainerSpec, parameter_count
from benchd.workloads.training.mnist_data import SiamesePairs, load_train_images


class SiameseTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        images, labels = load_train_images(spec.data_path)
        pairs = SiamesePairs(images, labels, spec.seed)
        self.data = SampledLoader(pairs, spec, batched_dataset=True)
        self.device = spec.device
        self.model = SiameseNetwork().to(spec.device)
        self.criterion = nn.BCELoss()
        self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=1.0)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.7)
        self.parameters = parameter_count(self.model)
        self.model.train()

    def step(self, batch) -> tuple[torch.Tensor, int]:
        first, second, targets = (t.to(self.device, non_blocking=True) for t in batch)
        self.optimizer.zero_grad()
        value = self.criterion(self.model(first, second), targets)
        value.backward()
        self.optimizer.step()
        return value.detach(), len(targets)

    def end_epoch(self) -> None:
        self.scheduler.step()
