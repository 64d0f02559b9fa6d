"""Presets and parameter counts as docs/workloads.md publishes them, and override validation."""

from __future__ import annotations

import pytest

from benchd import catalog
from benchd.catalog import CatalogError, suites
from benchd.catalog import request as request_model
from benchd.workloads import dcgan as catalog_dcgan

# Straight from docs/workloads.md (the published figures).
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
# The fifth workload's counts, as its issue states them (GPT-2 small's body on WikiText-2's vocabulary).
GPT_PARAMETERS = {("gpt", "b8-d768-l12-s1024"): 111_399_936, ("gpt", "b16-d384-l6-s256"): 23_524_608}
PARAMETERS = {**PUBLISHED_PARAMETERS, **GPT_PARAMETERS}


def test_presets_are_the_comparisons_configurations_and_gpts() -> None:
    listed = {(w.name, p.name) for w in catalog.WORKLOADS.values() for p in w.presets}
    assert listed == set(PARAMETERS)


@pytest.mark.parametrize(("workload", "preset"), sorted(PARAMETERS))
def test_formula_parameter_counts_match_published(workload: str, preset: str) -> None:
    spec = catalog.get_workload(workload)
    chosen = spec.preset(preset)
    assert spec.parameters(chosen.options) == PARAMETERS[(workload, preset)]
    if preset in PUBLISHED_BATCHES:
        assert chosen.batch_size == PUBLISHED_BATCHES[preset]
    else:
        assert chosen.batch_size == int(preset.split("-", maxsplit=1)[0][1:])


def test_dcgan_halves_match_published() -> None:
    assert catalog_dcgan.generator_parameters() == 3_576_704
    assert catalog_dcgan.discriminator_parameters() == 2_765_568


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
    ("values", "field", "fragment"),
    [
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1, got 0"),
        ({"fraction": 0.0}, "fraction", "greater than 0, got 0.0"),
        ({"fraction": 1.5}, "fraction", "less than or equal to 1, got 1.5"),
        ({"fraction": float("nan")}, "fraction", "finite number"),
        ({"fraction": float("inf")}, "fraction", "finite number"),
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"epochs": True}, "epochs", "valid integer"),
        ({"epochs": "3"}, "epochs", "valid integer"),
        ({"epochs": 10**4000}, "epochs", "less than or equal to 1000"),
        ({"options": {"emsize": 0}}, "options.emsize", "must be between 2 and 65536, got 0"),
        ({"options": {"emsize": 33}}, "options.emsize", "must be a multiple of 2, got 33"),
        ({"options": {"emsize": "64"}}, "options.emsize", "valid integer"),
        (
            {"options": {"heads": 2}},
            "options.heads",
            "transformer has no option 'heads'; its options: emsize",
        ),
        ({"workers": -1}, "workers", "greater than or equal to 0"),
        ({"seed": 2**64}, "seed", "less than or equal to 9223372036854775807"),
        ({"timeout": 1e300}, "timeout", "less than or equal to 2592000"),
        ({"timing": "wall"}, "timing", "'reference' or 'device', got 'wall'"),
        ({"device": "tpu"}, "device", "'tpu' is not one of auto, cpu"),
        ({"presets": []}, "presets", "list between 1 and 64"),
        ({"presets": ["b20-e200-l2-h200", "nope"]}, "presets", "unknown preset 'nope'"),
        ({"colour": "red"}, "", "unknown field 'colour'; fields: batch_size"),
    ],
)
def test_bad_requests_name_the_field_and_the_problem(values: dict, field: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as caught:
        request_model.parse({"workload": "transformer", **values}).configs()
    assert caught.value.field == field
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(field) or not field or field in caught.value.reason


def test_a_request_builds_one_config_per_preset() -> None:
    request = request_model.parse({"workload": "vae", "fraction": 0.5, "timing": "device", "epochs": 2})
    configs = request.configs()
    assert [(c.preset, c.fraction, c.timing, c.epochs) for c in configs] == [
        ("bs128", 0.5, "device", 2), ("bs5120", 0.5, "device", 2),
    ]  # fmt: skip
    assert request_model.openapi_schema()["properties"]["workload"]["enum"] == list(catalog.WORKLOADS)


def test_model_options_rejected_for_workloads_without_them() -> None:
    spec = catalog.get_workload("vae")
    with pytest.raises(CatalogError, match="vae has no option 'nhid'; its options: none"):
        catalog.build_config(spec, spec.presets[0], options={"nhid": 10})


def test_a_workload_checks_how_its_options_combine() -> None:
    gpt = catalog.get_workload("gpt")
    with pytest.raises(CatalogError, match="width 388 does not split into 6 heads") as caught:
        catalog.build_config(gpt, gpt.preset("b16-d384-l6-s256"), options={"width": 388}, fraction=0.5)
    assert caught.value.field == "options.heads"
    config = catalog.build_config(gpt, gpt.preset("b16-d384-l6-s256"), options={"width": 388, "heads": 4})
    assert dict(config.options) == {"width": 388, "layers": 6, "heads": 4, "context": 256}
    assert catalog.setup(config.to_json())["overridden"] is True


def test_gpts_floor_is_one_batch_of_its_context() -> None:
    gpt = catalog.get_workload("gpt")
    large = gpt.preset("b8-d768-l12-s1024")
    assert gpt.min_fraction(8, large.options) == pytest.approx(8 * 1024 / 2_088_628)
    with pytest.raises(CatalogError, match=r"at least 0\.00392"):
        catalog.build_config(gpt, large, fraction=0.001)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(CatalogError, match="valid workloads: dcgan, gpt, siamese, transformer, vae"):
        catalog.get_workload("resnet")
    with pytest.raises(CatalogError, match="valid presets: bs128, bs5120"):
        catalog.resolve_presets(catalog.get_workload("vae"), ["bs64"])
    assert len(catalog.resolve_presets(catalog.get_workload("vae"), ["all"])) == 2


def test_a_suite_expands_in_the_request_model_and_a_later_version_keeps_what_it_did_not_change() -> None:
    (gpt,) = request_model.parse({"workload": "gpt", "suite": "standard-v2"}).configs()
    assert (gpt.preset, gpt.fraction, gpt.epochs) == ("b16-d384-l6-s256", 0.01, 2)
    assert suites.suite_of(gpt.to_json()) == "standard-v2"
    vae = request_model.parse({"workload": "vae", "suite": "standard-v2"}).configs()
    assert [suites.suite_of(c.to_json()) for c in vae] == [
        "standard-v1",
        "standard-v1",
    ]  # the first that runs it
    assert suites.includes("standard-v2", "standard-v1", "vae")  # ... so comparing standard-v2 finds them
    assert not suites.includes("standard-v1", "standard-v2", "gpt")
    assert set(suites.suites()["standard-v1"]) == {
        "dcgan",
        "siamese",
        "transformer",
        "vae",
    }  # the published four
    assert set(suites.suites()["standard-v2"]) == set(catalog.WORKLOADS)
