"""Siamese ResNet-18 on MNIST pairs: BCE, Adadelta lr 1.0, StepLR gamma 0.7 per epoch."""

from __future__ import annotations

import torch
from torch import nn

from benchd.workloads.siamese.model import SiameseNetwork
from benchd.workloads.training.base import (
    DeviceResident,
    LoaderTrainer,
    SampledLoader,
    StepLog,
    TrainerSpec,
    parameter_count,
    uniform,
)
from benchd.workloads.training.mnist_data import DevicePairs, ReferencePairs, load_train_images
from benchd.workloads.training.precision import Precision

LOG_INTERVAL = 10


class SiameseTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        images, labels = load_train_images(spec.data_path)
        if spec.reference:
            # The published script shuffled only on CUDA (shuffle sat among its CUDA loader options).
            shuffle = spec.device.type == "cuda"
            self.data = SampledLoader(
                ReferencePairs(images, labels), spec, batched_dataset=False, shuffle=shuffle
            )
        else:
            pairs = DevicePairs(images, labels, spec.device, spec.seed)
            self.data = DeviceResident(torch.arange(len(pairs)), spec, pairs.batch)
        self.device = spec.device
        self.precision = Precision.for_device(spec.precision, spec.device)
        self.spec = spec
        model = SiameseNetwork().to(spec.device)
        self.criterion = nn.BCELoss()
        self.optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.7)
        self.parameters = parameter_count(model)
        self.model = spec.prepared(model)
        # The reference read loss.item() only for its log line, every tenth step.
        self.log = StepLog(
            spec, "Train step {step}: loss {loss:.6f}", read_every=LOG_INTERVAL, line_every=LOG_INTERVAL
        )
        self.model.train()

    def step(self, batch, index: int) -> tuple[torch.Tensor, int]:
        first, second, targets = (t.to(self.device, non_blocking=True) for t in batch)
        first, second = self.spec.images(first), self.spec.images(second)
        self.optimizer.zero_grad()
        with self.precision.autocast():
            similarity = self.model(first, second).squeeze()
            if similarity.dim() == 0:  # a last batch of one pair (the example failed there)
                similarity = similarity.unsqueeze(0)
        value = self.criterion(similarity.float(), targets)
        self.precision.backward(value)
        self.precision.step(self.optimizer)
        self.precision.update()
        self.log.read(index, loss=value)
        return value.detach(), len(targets)

    def end_epoch(self) -> None:
        self.scheduler.step()

    def stateful(self) -> list:
        return [self.model, self.optimizer, *self.precision.stateful()]

    def example_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = uniform(2, size, 1, 28, 28).mul_(255.0)  # raw 0-255 values, as the pairs are
        return images[0], images[1], (torch.arange(size) % 2 == 0).float()
