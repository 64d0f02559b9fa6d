"""DCGAN on LSUN classroom: BCE, Adam 2e-4 betas (0.5, 0.999), D on real then fake, then G.

Reference timing is the published example's epoch: per step, the three
`D(...)` means read as they are computed and a log line with both losses;
every 100 steps the real batch and G's images of the fixed noise saved as
PNG grids; at the end of the epoch both networks' weights saved. Those files
go to the run's scratch directory, which the parent removes after the run.
Device timing decodes the epoch's images once, before timing, holds them on
the device as bytes, and times the training steps alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms
from torchvision.utils import save_image

from benchd.datasets import lsun
from benchd.workloads.dcgan.model import LATENT, Discriminator, Generator, init_weights
from benchd.workloads.training.base import (
    DeviceResident,
    LoaderTrainer,
    SampledLoader,
    StepLog,
    TrainerSpec,
    epoch_size,
    parameter_count,
    uniform,
)
from benchd.workloads.training.precision import Precision

IMAGE_SIZE = 64
REAL, FAKE = 1.0, 0.0
IMAGES_EVERY = 100
LOG_LINE = (
    "[{step}] Loss_D: {loss_d:.4f} Loss_G: {loss_g:.4f} D(x): {d_x:.4f} D(G(z)): {d_g_z1:.4f} / {d_g_z2:.4f}"
)


class LsunImages(Dataset):
    """Images from an LSUN LMDB, decoded and transformed one at a time as in the reference, each with its
    class index (0: one class) as torchvision's LSUN gives it, so the loader collates labels as the
    example's did.

    The key list is read once here. Each process that reads (DataLoader
    workers included) uses its own LMDB environment, which `lsun.open_env`
    keeps per process. No key cache is written anywhere.
    """

    def __init__(self, path, transform) -> None:
        self.path = path
        self.transform = transform
        self.keys = lsun.read_keys(lsun.open_env(path))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with lsun.open_env(self.path).begin(write=False) as txn:
            value = txn.get(self.keys[index])
        return self.transform(lsun.decode(value, self.path / "data.mdb")), 0


def image_transform(*, as_bytes: bool = False) -> transforms.Compose:
    """The reference pipeline; `as_bytes` stops before ToTensor and Normalize, for device residence."""
    steps: list = [transforms.Resize(IMAGE_SIZE), transforms.CenterCrop(IMAGE_SIZE)]
    if as_bytes:
        steps.append(transforms.PILToTensor())
    else:
        steps += [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
    return transforms.Compose(steps)


def normalized(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> what ToTensor then Normalize(0.5, 0.5) give: floats in [-1, 1]."""
    return images.float().div_(255.0).sub_(0.5).div_(0.5)


def decode_epoch(spec: TrainerSpec) -> torch.Tensor:
    """The epoch's images (a seeded random subset for a fraction), decoded once into uint8."""
    images = LsunImages(spec.data_path, image_transform(as_bytes=True))
    _steps, samples = epoch_size(len(images), spec.batch_size, spec.fraction)
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(spec.seed))[:samples]
    loader = DataLoader(Subset(images, chosen.tolist()), batch_size=256, num_workers=spec.workers)
    return torch.cat([images for images, _labels in loader])


class DcganTrainer(LoaderTrainer):
    def __init__(self, spec: TrainerSpec) -> None:
        if spec.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if spec.reference:
            images = LsunImages(spec.data_path, image_transform())
            self.data = SampledLoader(images, spec, batched_dataset=False)
        else:
            # Decoded as a subset already cut to the fraction: the resident set is the whole epoch.
            self.data = DeviceResident(
                decode_epoch(spec),
                dataclasses.replace(spec, fraction=1.0),
                lambda images: (normalized(images),),
            )
        self.device = spec.device
        self.precision = Precision.for_device(spec.precision, spec.device)
        self.spec = spec
        generator, discriminator = Generator().to(spec.device), Discriminator().to(spec.device)
        generator.apply(init_weights)
        discriminator.apply(init_weights)
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.parameters = parameter_count(generator, discriminator)
        self.generator, self.discriminator = spec.prepared(generator), spec.prepared(discriminator)
        self.log = StepLog(spec, LOG_LINE)
        self.scratch: Path | None = spec.scratch_dir if spec.reference else None
        self.has_epoch_side_work = self.scratch is not None
        # The reference's fixed noise has one vector per sample of a batch.
        self.fixed_noise = spec.images(torch.randn(spec.batch_size, LATENT, 1, 1, device=spec.device))
        self.epoch = 0
        self.last_real: torch.Tensor | None = None

    def _mean(self, output: torch.Tensor) -> float | None:
        """D's mean output, read to the host at once in reference timing (the example's D(x) etc.)."""
        return output.mean().item() if self.log.enabled else None

    def step(self, batch: tuple[torch.Tensor, ...], index: int) -> tuple[torch.Tensor, int]:
        """The example's step: one label tensor, refilled for the fake pass and again for G's."""
        real = self.spec.images(batch[0].to(self.device, non_blocking=True))
        size = real.size(0)
        label = torch.full((size,), REAL, device=self.device)

        precision = self.precision
        self.discriminator.zero_grad()
        with precision.autocast():
            output = self.discriminator(real).float()
        loss_real = self.criterion(output, label)
        precision.backward(loss_real)
        d_x = self._mean(output)
        noise = self.spec.images(torch.randn(size, LATENT, 1, 1, device=self.device))
        with precision.autocast():
            fake = self.generator(noise)
        label.fill_(FAKE)
        with precision.autocast():
            output = self.discriminator(fake.detach()).float()
        loss_fake = self.criterion(output, label)
        precision.backward(loss_fake)
        d_g_z1 = self._mean(output)
        loss_d = loss_real + loss_fake
        precision.step(self.opt_d)

        self.generator.zero_grad()
        label.fill_(REAL)
        with precision.autocast():
            output = self.discriminator(fake).float()
        loss_g = self.criterion(output, label)
        precision.backward(loss_g)
        d_g_z2 = self._mean(output)
        precision.step(self.opt_g)
        precision.update()
        self.log.read(index, loss_d=loss_d, loss_g=loss_g, d_x=d_x, d_g_z1=d_g_z1, d_g_z2=d_g_z2)
        self.last_real = real
        return (loss_d + loss_g).detach(), size

    def side_work_due(self, index: int) -> bool:
        return self.scratch is not None and index % IMAGES_EVERY == 0

    def side_work(self, index: int) -> None:
        """The real batch and G's images of the fixed noise, as normalized PNG grids."""
        assert self.scratch is not None and self.last_real is not None
        save_image(self.last_real, self.scratch / "real_samples.png", normalize=True)
        fake = self.generator(self.fixed_noise)
        save_image(fake.detach(), self.scratch / f"fake_samples_epoch_{self.epoch:03d}.png", normalize=True)

    def epoch_side_work(self) -> None:
        """Both networks' weights, as the reference checkpointed them inside its timer."""
        assert self.scratch is not None
        torch.save(self.generator.state_dict(), self.scratch / f"netG_epoch_{self.epoch}.pth")
        torch.save(self.discriminator.state_dict(), self.scratch / f"netD_epoch_{self.epoch}.pth")

    def end_epoch(self) -> None:
        self.epoch += 1

    def stateful(self) -> list:
        return [self.generator, self.discriminator, self.opt_d, self.opt_g, *self.precision.stateful()]

    def example_batch(self, size: int) -> tuple[torch.Tensor]:
        return (uniform(size, 3, IMAGE_SIZE, IMAGE_SIZE).mul_(2.0).sub_(1.0),)  # normalized to [-1, 1]

    def probe_side_passes(self) -> None:
        """The image grid's pass of G over the fixed noise (outside autocast, as side_work runs it)."""
        if self.scratch is not None:
            self.generator(self.fixed_noise)
