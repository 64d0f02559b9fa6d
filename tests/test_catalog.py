"""Presets and parameter counts as WORKLOADS.md publishes them, and override validation."""

from __future__ import annotations

import pytest

from benchd import catalog
from benchd.catalog import CatalogError

# Straight from WORKLOADS.md.
PUBLISHED_PARAMETERS = {
    ("dcgan", "bs64"): 3_576_704 + 2_765_568,
    ("dcgan", "bs1024"): 3_576_704 + 2_765_568,
    ("siamese", "bs64"): 11_432_897,
    ("siamese", "bs1024"): 11_432_897,
    ("transformer", "b20-e200-l2-h200"): 13_828_478,
    ("transformer", "b20-e500-l2-h500"): 36_321_278,
    ("transformer", "b200-e500-l4-h500"): 39_331_278,
    ("transformer", "b200-e500-l6-h1024"): 45_488_422,
    ("transformer", "b200-e500-l10-h1024"): 53_606_518,
    ("vae", "bs128"): 652_824,
    ("vae", "bs5120"): 652_824,
}
PUBLISHED_BATCHES = {"bs64": 64, "bs1024": 1024, "bs128": 128, "bs5120": 5120}


def test_presets_are_the_comparisons_configurations() -> None:
    listed = {(w.name, p.name) for w in catalog.WORKLOADS.values() for p in w.presets}
    assert listed == set(PUBLISHED_PARAMETERS)


@pytest.mark.parametrize(("workload", "preset"), sorted(PUBLISHED_PARAMETERS))
def test_formula_parameter_counts_match_published(workload: str, preset: str) -> None:
    spec = catalog.get_workload(workload)
    chosen = spec.preset(preset)
    assert spec.parameters(chosen.options) == PUBLISHED_PARAMETERS[(workload, preset)]
    if preset in PUBLISHED_BATCHES:
        assert chosen.batch_size == PUBLISHED_BATCHES[preset]
    else:
        assert chosen.batch_size == int(preset.split("-", maxsplit=1)[0][1:])


def test_dcgan_halves_match_published() -> None:
    assert catalog.dcgan_generator_parameters() == 3_576_704
    assert catalog.dcgan_discriminator_parameters() == 2_765_568


def test_overrides_apply_and_are_validated() -> None:
    spec = catalog.get_workload("transformer")
    config = catalog.build_config(
        spec, spec.presets[0], batch_size=7, options={"emsize": 64, "nlayers": None}, fraction=0.5
    )
    assert config.batch_size == 7
    assert dict(config.options) == {"emsize": 64, "nlayers": 2, "nhid": 200}
    assert config.workers is None  # resolved in the child, from the device the run lands on
    assert config.timing == catalog.TIMING_REFERENCE
    assert config.to_json()["timing"] == "reference"


@pytest.mark.parametrize(
    ("workload", "device_type", "platform", "workers", "pinned"),
    [
        ("dcgan", "cuda", "linux", 2, False),
        ("dcgan", "cpu", "linux", 2, False),
        ("dcgan", "mps", "darwin", 0, False),
        ("dcgan", "cpu", "darwin", 0, False),
        ("vae", "cuda", "linux", 1, True),
        ("vae", "cpu", "linux", 0, False),
        ("vae", "mps", "darwin", 0, False),
        ("siamese", "cuda", "linux", 1, True),
        ("siamese", "xpu", "linux", 0, False),
        ("transformer", "cuda", "linux", 0, False),
    ],
)
def test_reference_loaders_follow_the_published_runs(
    workload: str, device_type: str, platform: str, workers: int, pinned: bool
) -> None:
    loader = catalog.get_workload(workload).loader
    assert loader.workers_for(device_type, platform) == workers
    assert loader.pin_memory(device_type) is pinned


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch size must be at least 1"),
        ({"fraction": 0.0}, "fraction must be in (0, 1]"),
        ({"fraction": 1.5}, "fraction must be in (0, 1]"),
        ({"epochs": 0}, "epochs must be between"),
        ({"options": {"emsize": 0}}, "emsize must be at least 1"),
        ({"options": {"emsize": 33}}, "emsize must be even"),
        ({"workers": -1}, "workers must be 0 or more"),
        ({"timing": "wall"}, "timing must be one of reference, device, got 'wall'"),
    ],
)
def test_bad_overrides_name_the_problem(kwargs: dict, message: str) -> None:
    spec = catalog.get_workload("transformer")
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        catalog.build_config(spec, spec.presets[0], **kwargs)


def test_model_options_rejected_for_workloads_without_them() -> None:
    spec = catalog.get_workload("vae")
    with pytest.raises(CatalogError, match="--nhid applies only"):
        catalog.build_config(spec, spec.presets[0], options={"nhid": 10})


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(CatalogError, match="valid workloads: dcgan, siamese, transformer, vae"):
        catalog.get_workload("resnet")
    with pytest.raises(CatalogError, match="valid presets: bs128, bs5120"):
        catalog.resolve_presets(catalog.get_workload("vae"), ["bs64"])
    assert len(catalog.resolve_presets(catalog.get_workload("vae"), ["all"])) == 2
