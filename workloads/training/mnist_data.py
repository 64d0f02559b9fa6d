"""MNIST for the VAE and the Siamese network, in each timing's data path.

Reference timing feeds the models as the published scripts did, one sample
at a time through a Dataset's `__getitem__`: torchvision's own MNIST class
with `ToTensor` for the VAE, and Python-`random` pair drawing for the
Siamese network. Device timing holds the images on the device and builds
whole batches by indexing there.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from benchd.datasets import mnist

CLASSES = 10


def load_train_images(path) -> tuple[torch.Tensor, torch.Tensor]:
    split = mnist.read_split(path, "train")
    return torch.from_numpy(split.images.copy()), torch.from_numpy(split.labels.astype(np.int64))


class LoadedMNIST(datasets.MNIST):
    """torchvision's MNIST over images benchd has already read.

    torchvision's constructor insists on its own `root/MNIST/raw` layout of
    uncompressed files, which benchd's data directory does not follow (it
    also takes the gzipped files as published); everything else, and above
    all `__getitem__` (PIL image, then the transform), is torchvision's.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        datasets.VisionDataset.__init__(self, root=None, transform=transforms.ToTensor())
        self.train = True
        self.data = images
        self.targets = labels


class ReferencePairs(Dataset):
    """Pairs drawn per sample with Python's `random`, exactly as the published Siamese example did.

    A random class, a random image of it, then for an even index another
    image of that class (drawn again until it is not the same one; target 1)
    and for an odd index an image of a class drawn again until it differs
    (target 0). The same calls in the same order, so a seed gives the
    example's pairs, and each image copied then converted to raw 0-255
    floats as it was (`clone().float()`): the values a run meets decide its
    CPU time (denormals), and the copies are work the example's epoch did.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images.unsqueeze(1)
        self.by_class = [np.flatnonzero(labels.numpy() == digit) for digit in range(CLASSES)]
        if any(len(members) < 2 for members in self.by_class):
            raise ValueError("every digit class needs at least two images to build pairs")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        first_class = random.randint(0, CLASSES - 1)
        members = self.by_class[first_class]
        first = random.randint(0, len(members) - 1)
        if index % 2 == 0:
            partners = members
            second = random.randint(0, len(members) - 1)
            while second == first:
                second = random.randint(0, len(members) - 1)
        else:
            other_class = random.randint(0, CLASSES - 1)
            while other_class == first_class:
                other_class = random.randint(0, CLASSES - 1)
            partners = self.by_class[other_class]
            second = random.randint(0, len(partners) - 1)
        return (
            self.images[members[first]].clone().float(),
            self.images[partners[second]].clone().float(),
            torch.tensor(float(index % 2 == 0)),
        )


class DevicePairs:
    """Pairs by the same rule, a whole batch at a time, drawn and gathered on the device.

    Class membership, the random draws (from a seeded generator of the
    device's own) and the gathers all stay where the images are, so a step
    waits for no host-to-device copy.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device, seed: int) -> None:
        counts = torch.bincount(labels, minlength=CLASSES)
        if (counts < 2).any():
            raise ValueError("every digit class needs at least two images to build pairs")
        self.images = images.unsqueeze(1).to(device)
        self.by_class = torch.argsort(labels, stable=True).to(device)
        self.class_start = (torch.cumsum(counts, 0) - counts).to(device)
        self.class_count = counts.to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def _uniform(self, bound: torch.Tensor) -> torch.Tensor:
        return (torch.rand(len(bound), generator=self.generator, device=bound.device) * bound).long()

    def _classes(self, low: int, count: int, device: torch.device) -> torch.Tensor:
        return torch.randint(low, CLASSES, (count,), generator=self.generator, device=device)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        same = indices % 2 == 0
        first_class = self._classes(0, len(indices), indices.device)
        shift = self._classes(1, len(indices), indices.device)
        second_class = torch.where(same, first_class, (first_class + shift) % CLASSES)
        first = self._uniform(self.class_count[first_class])
        second = self._uniform(self.class_count[second_class] - same.long())
        second = second + (same & (second >= first)).long()  # a positive pair never repeats its image
        first_image = self.by_class[self.class_start[first_class] + first]
        second_image = self.by_class[self.class_start[second_class] + second]
        return self.images[first_image].float(), self.images[second_image].float(), same.float()
