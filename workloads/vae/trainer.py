"""VAE on MNIST: Adam 1e-3, reconstruction BCE plus KL divergence."""

from __future__ import annotations

import torch

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
from benchd.workloads.vae.model import VAE, loss

LOG_INTERVAL = 10


def _scaled(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 28, 28) on the device -> float (n, 1, 28, 28) in [0, 1], as ToTensor gives."""
    return images.unsqueeze(1).float().div_(255.0)


class VaeTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        images, labels = load_train_images(spec.data_path)
        if spec.reference:
            self.data = SampledLoader(LoadedMNIST(images, labels), spec, batched_dataset=False)
        else:
            self.data = DeviceResident(images, spec, _scaled)
        self.device = spec.device
        self.precision = Precision.for_device(spec.precision, spec.device)
        model = VAE().to(spec.device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.parameters = parameter_count(model)
        self.model = spec.prepared(model)
        # The reference read loss.item() into its running total every step, before the update, and again
        # for each log line, after it.
        self.total = StepLog(spec, None)
        self.log = StepLog(
            spec, "Train step {step}: loss {loss:.6f}", read_every=LOG_INTERVAL, line_every=LOG_INTERVAL
        )
        self.model.train()

    def step(self, batch, index: int) -> tuple[torch.Tensor, int]:
        images = batch[0] if isinstance(batch, list) else batch  # (images, labels) from torchvision
        x = images.to(self.device, non_blocking=True)
        self.optimizer.zero_grad()
        with self.precision.autocast():
            recon, mu, logvar = self.model(x)
        value = loss(recon.float(), x, mu.float(), logvar.float())
        self.precision.backward(value)
        self.total.read(index, loss=value)
        self.precision.step(self.optimizer)
        self.precision.update()
        self.log.read(index, loss=value)
        return value.detach(), len(x)

    def stateful(self) -> list:
        return [self.model, self.optimizer, *self.precision.stateful()]

    def example_batch(self, size: int) -> torch.Tensor:
        return uniform(size, 1, 28, 28)
