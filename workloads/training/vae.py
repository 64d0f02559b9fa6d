"""VAE on MNIST: Adam 1e-3, reconstruction BCE plus KL divergence."""

from __future__ import annotations

import torch

from benchd.workloads.models.vae import VAE, loss
from benchd.workloads.training.base import LoaderTrainer, SampledLoader, TrainerSpec, parameter_count
from benchd.workloads.training.mnist_data import ScaledImages, load_train_images


class VaeTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        images, _labels = load_train_images(spec.data_path)
        self.data = SampledLoader(ScaledImages(images), spec, batched_dataset=True)
        self.device = spec.device
        self.model = VAE().to(spec.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.parameters = parameter_count(self.model)
        self.model.train()

    def step(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        x = batch.to(self.device, non_blocking=True)
        self.optimizer.zero_grad()
        recon, mu, logvar = self.model(x)
        value = loss(recon, x, mu, logvar)
        value.backward()
        self.optimizer.step()
        return value.detach(), len(x)
