"""What a dataset is to the catalog, and the published sizes of the built-in ones (docs/workloads.md).

Kept free of imports so the parent can use them without loading numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    """A dataset a workload trains on, as the parent knows it before any data is read.

    The module is the dataset's format (reader, synthetic generator, download
    sources: `benchd.datasets.layout.DatasetFormat`); it imports numpy but
    never torch, and is imported only when data is checked or prepared. Two
    workloads that name the same dataset share its files.
    """

    name: str
    module: str
    train_samples: int  # samples in one real training epoch: images, pairs or tokens


LSUN_CLASSROOM_IMAGES = 168_103

MNIST_TRAIN_IMAGES = 60_000
MNIST_TEST_IMAGES = 10_000
MNIST_SIDE = 28

WIKITEXT2_TRAIN_TOKENS = 2_088_628
WIKITEXT2_VALID_TOKENS = 217_646
WIKITEXT2_TEST_TOKENS = 245_569
WIKITEXT2_VOCAB = 33_278

LSUN_CLASSROOM = Dataset("lsun-classroom", "benchd.datasets.lsun", LSUN_CLASSROOM_IMAGES)
MNIST = Dataset("mnist", "benchd.datasets.mnist", MNIST_TRAIN_IMAGES)
WIKITEXT2 = Dataset("wikitext-2", "benchd.datasets.wikitext", WIKITEXT2_TRAIN_TOKENS)
