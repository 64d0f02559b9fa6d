"""The mlp workload's trainer: imported in benchd's child process only, where torch is.

Reference timing feeds it as torchvision's MNIST example does (a shuffled
DataLoader over PIL images with ToTensor); device timing keeps the images
and labels on the device and gathers each batch there.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from benchd.workloads.training.base import (
    DeviceResident,
    LoaderTrainer,
    SampledLoader,
    StepLog,
    TrainerSpec,
    parameter_count,
    uniform,
)
from benchd.workloads.training.mnist_data import LoadedMNIST, load_train_images
from benchd.workloads.training.precision import Precision
from benchd_mlp import CLASSES, PIXELS

LEARNING_RATE = 1e-3
LOG_INTERVAL = 10


def model(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(PIXELS, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, CLASSES),
    )


def _on_device(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 rows of 784 pixels and a label, gathered on the device -> images in [0, 1] and labels."""
    return samples[:, :PIXELS].float().div_(255.0), samples[:, PIXELS].long()


class MlpTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        images, labels = load_train_images(spec.data_path)
        if spec.reference:
            self.data = SampledLoader(LoadedMNIST(images, labels), spec, batched_dataset=False)
        else:
            rows = torch.cat(
                [images.reshape(len(images), PIXELS), labels.to(torch.uint8).unsqueeze(1)], dim=1
            )
            self.data = DeviceResident(rows, spec, _on_device)
        self.device = spec.device
        self.precision = Precision.for_device(spec.precision, spec.device)
        network = model(spec.options["hidden"]).to(spec.device)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
        self.parameters = parameter_count(network)
        self.model = spec.prepared(network)
        self.log = StepLog(spec, "step {step}: loss {loss:.4f}", line_every=LOG_INTERVAL)
        self.model.train()

    def step(self, batch, index: int) -> tuple[torch.Tensor, int]:
        images, labels = (t.to(self.device, non_blocking=True) for t in batch)
        self.optimizer.zero_grad()
        with self.precision.autocast():
            logits = self.model(images)
        value = functional.cross_entropy(logits.float(), labels)
        self.precision.backward(value)
        self.precision.step(self.optimizer)
        self.precision.update()
        self.log.read(index, loss=value)
        return value.detach(), len(labels)

    def stateful(self) -> list:
        return [self.model, self.optimizer, *self.precision.stateful()]

    def example_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return uniform(size, 1, 28, 28), torch.zeros(size, dtype=torch.long)
