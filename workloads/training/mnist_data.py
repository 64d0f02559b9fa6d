"""MNIST as torch datasets that gather whole batches at once.

The images are small and held in memory, so batches are built by fancy
indexing in `__getitems__` rather than sample by sample: data loading then
costs what the data needs, not what Python's per-sample overhead adds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from benchd.workloads.datasets import mnist


def load_train_images(path) -> tuple[torch.Tensor, torch.Tensor]:
    split = mnist.read_split(path, "train")
    return torch.from_numpy(split.images.copy()), torch.from_numpy(split.labels.astype(np.int64))


class ScaledImages(Dataset):
    """Images scaled to [0, 1], shape (1, 28, 28): the VAE's input."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self.images[indices].unsqueeze(1).float().div_(255.0)


class SiamesePairs(Dataset):
    """Pairs of raw 0-255 images: same class (target 1) for even indices, different (0) for odd."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> None:
        self.images = images
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=10)
        self.by_class = order
        self.class_start = torch.cumsum(counts, 0) - counts
        self.class_count = counts
        if (counts == 0).any():
            raise ValueError("every digit class needs at least one image to build pairs")
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def _pick(self, classes: torch.Tensor) -> torch.Tensor:
        offsets = (torch.rand(len(classes), generator=self.generator) * self.class_count[classes]).long()
        return self.by_class[self.class_start[classes] + offsets]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        same = index % 2 == 0
        first_class = torch.randint(0, 10, (len(index),), generator=self.generator)
        shift = torch.randint(1, 10, (len(index),), generator=self.generator)
        second_class = torch.where(same, first_class, (first_class + shift) % 10)
        first = self.images[self._pick(first_class)].unsqueeze(1).float()
        second = self.images[self._pick(second_class)].unsqueeze(1).float()
        return first, second, same.float()
