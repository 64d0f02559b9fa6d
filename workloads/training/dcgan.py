"""DCGAN on LSUN classroom: BCE, Adam 2e-4 betas (0.5, 0.999), D on real then fake, then G."""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision import transforms

from benchd.workloads.datasets import lsun
from benchd.workloads.models.dcgan import LATENT, Discriminator, Generator, init_weights
from benchd.workloads.training.base import LoaderTrainer, SampledLoader, TrainerSpec, parameter_count

IMAGE_SIZE = 64
REAL, FAKE = 1.0, 0.0


class LsunImages(Dataset):
    """Images from an LSUN LMDB, decoded and transformed one at a time as in the reference.

    The key list is read once here; the LMDB environment itself is opened
    lazily in each process that reads (DataLoader workers must not share the
    parent's handle). No key cache is written anywhere.
    """

    def __init__(self, path, transform) -> None:
        self.path = path
        self.transform = transform
        env = lsun.open_env(path)
        try:
            self.keys = lsun.read_keys(env)
        finally:
            env.close()
        self._env = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_env"] = state["_pid"] = None
        return state

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._env is None or self._pid != os.getpid():
            self._env, self._pid = lsun.open_env(self.path), os.getpid()
        with self._env.begin(write=False) as txn:
            value = txn.get(self.keys[index])
        return self.transform(lsun.decode(value, self.path / "data.mdb"))


def image_transform() -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize(IMAGE_SIZE),
            transforms.CenterCrop(IMAGE_SIZE),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


class DcganTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        if spec.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.data = SampledLoader(LsunImages(spec.data_path, image_transform()), spec, batched_dataset=False)
        self.device = spec.device
        self.generator = Generator().to(spec.device)
        self.discriminator = Discriminator().to(spec.device)
        self.generator.apply(init_weights)
        self.discriminator.apply(init_weights)
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.parameters = parameter_count(self.generator, self.discriminator)

    def step(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        real = batch.to(self.device, non_blocking=True)
        size = real.size(0)
        real_labels = torch.full((size,), REAL, device=self.device)
        fake_labels = torch.full((size,), FAKE, device=self.device)

        self.discriminator.zero_grad()
        loss_real = self.criterion(self.discriminator(real), real_labels)
        loss_real.backward()
        noise = torch.randn(size, LATENT, 1, 1, device=self.device)
        fake = self.generator(noise)
        loss_fake = self.criterion(self.discriminator(fake.detach()), fake_labels)
        loss_fake.backward()
        self.opt_d.step()

        self.generator.zero_grad()
        loss_g = self.criterion(self.discriminator(fake), real_labels)
        loss_g.backward()
        self.opt_g.step()
        return (loss_real + loss_fake + loss_g).detach(), size
