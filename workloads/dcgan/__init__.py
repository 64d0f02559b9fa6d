"""DCGAN on LSUN classroom: the generator and discriminator of 64x64 images, batch 64 and 1024."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

from benchd.catalog import LoaderPolicy, Preset, SuiteEntry, Workload
from benchd.catalog.counting import affine_norm, conv
from benchd.datasets import facts


def generator_parameters(nz: int = 100, ngf: int = 64, nc: int = 3) -> int:
    widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
    hidden = sum(conv(a, b, 4) + affine_norm(b) for a, b in pairwise(widths))
    return hidden + conv(ngf, nc, 4)


def discriminator_parameters(ndf: int = 64, nc: int = 3) -> int:
    widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
    hidden = sum(conv(a, b, 4) + affine_norm(b) for a, b in pairwise(widths))
    return conv(nc, ndf, 4) + hidden + conv(ndf * 8, 1, 4)


def parameters(_options: Mapping[str, int], _vocab: int) -> int:
    return generator_parameters() + discriminator_parameters()


# Sized so that a 2-core CPU runs it in minutes (docs/performance.md); the same in every standard suite.
STANDARD = SuiteEntry(("bs64",), 0.02, 2)

WORKLOAD = Workload(
    name="dcgan",
    title="DCGAN on LSUN classroom",
    data=facts.LSUN_CLASSROOM,
    sample_unit="images",
    presets=(Preset("bs64", 64), Preset("bs1024", 1024)),
    parameter_formula=parameters,
    convolutional=True,
    trainer="benchd.workloads.dcgan.trainer:DcganTrainer",
    loader=LoaderPolicy(workers=2, macos_workers=0),  # the comparison ran it with 0 workers on macOS
    image_size=64,
    suites={"standard-v1": STANDARD, "standard-v2": STANDARD},
    # 1: one label tensor refilled, labels collated, D's output squeezed, as the example (2026-11).
    revision=1,
)
