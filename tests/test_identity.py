"""Config identity (like for like across machines) and the `system` object (where a run ran)."""

from __future__ import annotations

import dataclasses
import sys
import types

import pytest

from benchd.catalog import identity
from benchd.catalog import request as request_model
from benchd.datasets.layout import DatasetInfo
from benchd.hostinfo import describe_host
from benchd.workloads import device

SYNTHETIC = DatasetInfo("mnist", "/a/mnist", "synthetic", 60000, 1.0, 0, 1).to_json()
REAL = DatasetInfo("mnist", "/b/mnist", "real", 60000).to_json()


def _config(**overrides) -> dict:
    values = {"workload": "vae", "presets": "bs128", "fraction": 0.5, **overrides}
    (config,) = request_model.parse(values).configs()
    return {**config.to_json(), "precision": "float32"}


def test_the_same_work_has_the_same_id_wherever_the_data_lives() -> None:
    elsewhere = {**SYNTHETIC, "path": "/elsewhere/mnist"}
    assert identity.config_id(_config(), SYNTHETIC) == identity.config_id(_config(), elsewhere)
    assert len(identity.config_id(_config(), SYNTHETIC)) == 12
    # The preset's name is a label: bs5120 run at batch 128 is bs128's work.
    assert identity.config_id(_config(presets="bs5120", batch_size=128), SYNTHETIC) == identity.config_id(
        _config(), SYNTHETIC
    )


@pytest.mark.parametrize(
    "change",
    [
        {"fraction": 0.25},
        {"batch_size": 64},
        {"epochs": 2},
        {"seed": 2},
        {"workers": 1},
        {"timing": "device"},
    ],
)
def test_anything_that_changes_the_work_changes_the_id(change: dict) -> None:
    assert identity.config_id(_config(**change), SYNTHETIC) != identity.config_id(_config(), SYNTHETIC)


def test_the_data_and_the_precision_are_part_of_the_identity() -> None:
    base = identity.config_id(_config(), SYNTHETIC)
    assert identity.config_id(_config(), REAL) != base
    smaller = DatasetInfo("mnist", "/a/mnist", "synthetic", 6000, 0.1, 0, 1).to_json()
    assert identity.config_id(_config(), smaller) != base
    reseeded = DatasetInfo("mnist", "/a/mnist", "synthetic", 60000, 1.0, 7, 1).to_json()
    assert identity.config_id(_config(), reseeded) != base
    assert identity.config_id({**_config(), "precision": "bf16"}, SYNTHETIC) != base
    assert identity.identity(_config(), SYNTHETIC)["version"] == identity.CONFIG_ID_VERSION


def test_a_workloads_revision_changes_its_own_ids_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchd.catalog import WORKLOADS

    vae = WORKLOADS["vae"]
    assert identity.identity(_config(), SYNTHETIC)["revision"] == vae.revision >= 1
    before = identity.config_id(_config(), SYNTHETIC)
    gpt = {**_config(), "workload": "gpt"}
    unchanged = identity.config_id(gpt, SYNTHETIC)
    assert "revision" not in identity.identity(gpt, SYNTHETIC)  # revision 0 hashes as before revisions
    raised = dataclasses.replace(vae, revision=vae.revision + 1)
    monkeypatch.setattr(identity, "WORKLOADS", {**WORKLOADS, "vae": raised})
    assert identity.config_id(_config(), SYNTHETIC) != before
    assert identity.config_id(gpt, SYNTHETIC) == unchanged
    assert "revision" not in identity.identity({**_config(), "workload": "not-installed"}, SYNTHETIC)


def test_a_shipped_band_keeps_the_id_of_the_revision_it_was_measured_at() -> None:
    from benchd.health.bands import shipped

    (band,) = [
        b for b in shipped()
        if (b.device_name, b.workload, b.preset, b.timing) == ("NVIDIA H200", "vae", "bs128", "reference")
    ]  # fmt: skip
    (config,) = request_model.parse(
        {"workload": "vae", "presets": "bs128", "epochs": 3, "timing": "reference"}
    ).configs()
    data = {"kind": "synthetic", "fingerprint": "mnist/synthetic/v1/scale=1/seed=0"}
    assert band.config == identity.config_id(config.to_json(), data, 0)  # measured at revision 0
    assert band.config != identity.config_id(config.to_json(), data)  # today's VAE work is another


def test_the_host_half_of_the_system_object(monkeypatch) -> None:
    monkeypatch.setenv("NODE_NAME", "node-7")
    monkeypatch.delenv("BENCHD_HOSTNAME", raising=False)
    monkeypatch.setenv("BENCHD_IMAGE", "benchd:test")
    host = describe_host()
    assert host["hostname"] == "node-7" and host["image"] == "benchd:test"
    assert host["logical_cpus"] >= 1 and host["memory_bytes"] > 2**28
    monkeypatch.setenv("BENCHD_HOSTNAME", "bench-a")
    assert describe_host()["hostname"] == "bench-a"  # an explicit name wins over the node's


class FakeNvml(types.SimpleNamespace):
    """The calls nvml_facts makes, with the shapes nvidia-ml-py returns."""

    def __init__(self, known: str) -> None:
        super().__init__(shutdowns=0)
        self.known = known

    def nvmlInit(self) -> None:  # noqa: N802 - NVML's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802 - NVML's names
        self.shutdowns += 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:  # noqa: N802 - NVML's names
        if uuid != self.known:
            raise RuntimeError("Not Found")
        return "handle"

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:  # noqa: N802 - NVML's names
        return 700_000  # milliwatts

    def nvmlDeviceGetMigMode(self, handle: str) -> tuple[int, int]:  # noqa: N802 - NVML's names
        return (0, 0)  # current, pending

    def nvmlDeviceGetCurrentEccMode(self, handle: str) -> int:  # noqa: N802 - NVML's names
        raise RuntimeError("Not Supported")  # consumer cards: absent, not False

    def nvmlSystemGetDriverVersion(self) -> bytes:  # noqa: N802 - NVML's names
        return b"580.159.04"


def test_nvml_facts_by_uuid(monkeypatch) -> None:
    fake = FakeNvml("GPU-1234")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    facts = device.nvml_facts("GPU-1234")
    assert facts == {
        "power_limit_watts": 700.0,
        "mig_mode": False,
        "ecc_mode": None,
        "driver_version": "580.159.04",
    }
    assert "no device GPU-9" in device.nvml_facts("GPU-9")["unavailable"]
    assert fake.shutdowns == 2
    assert device.nvml_facts(None) == {"unavailable": "torch reports no UUID for this device"}


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("BENCHD_", "NODE_NAME"))}


def test_compile_and_channels_last_are_their_own_configs_and_leave_older_ids_alone() -> None:
    def config(**switches: bool) -> dict:
        (built,) = request_model.parse({"workload": "siamese", "presets": "bs64", **switches}).configs()
        return built.to_json()

    eager = config()
    assert "compile" not in eager and "channels_last" not in config(compile=False)  # stored as before
    data = {"kind": "synthetic", "fingerprint": "f"}
    ids = {identity.config_id(config(**s), data) for s in ({}, {"compile": True}, {"channels_last": True})}
    assert len(ids) == 3
    assert identity.config_id(config(compile=False), data) == identity.config_id(eager, data)
