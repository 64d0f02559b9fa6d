"""Siamese ResNet-18 on MNIST pairs, batch 64 and 1024."""

from __future__ import annotations

from collections.abc import Mapping

from benchd.catalog import LoaderPolicy, Preset, SuiteEntry, Workload
from benchd.catalog.counting import affine_norm, conv, linear
from benchd.datasets import facts


def resnet18_feature_parameters(in_channels: int) -> int:
    """ResNet-18 up to and including average pooling (no fully connected layer)."""
    total = conv(in_channels, 64, 7) + affine_norm(64)
    c_in = 64
    for c_out in (64, 128, 256, 512):
        for block in range(2):
            first = conv(c_in, c_out, 3) + affine_norm(c_out)
            second = conv(c_out, c_out, 3) + affine_norm(c_out)
            downsample = 0
            if block == 0 and c_in != c_out:
                downsample = conv(c_in, c_out, 1) + affine_norm(c_out)
            total += first + second + downsample
            c_in = c_out
    return total


def parameters(_options: Mapping[str, int], _vocab: int) -> int:
    return resnet18_feature_parameters(1) + linear(1024, 256) + linear(256, 1)


# Sized so that a 2-core CPU runs it in minutes (docs/performance.md); the same in every standard suite.
STANDARD = SuiteEntry(("bs64", "bs1024"), 0.05, 2)

WORKLOAD = Workload(
    name="siamese",
    title="Siamese ResNet-18 on MNIST pairs",
    data=facts.MNIST,
    sample_unit="pairs",
    presets=(Preset("bs64", 64), Preset("bs1024", 1024)),
    parameter_formula=parameters,
    convolutional=True,
    trainer="benchd.workloads.siamese.trainer:SiameseTrainer",
    loader=LoaderPolicy(cuda_workers=1, pin_memory_on_cuda=True),
    suites={"standard-v1": STANDARD, "standard-v2": STANDARD},
    # 1: pairs drawn, copied and squeezed as the example does (2026-11).
    revision=1,
)
