"""Sensor backends against the real pynvml (autospec) and fake sysfs trees and modules; aggregation."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from unittest import mock

import pynvml
import pytest

from benchd.server.scoreboard import Scoreboard
from benchd.telemetry import aggregate
from benchd.telemetry.amd import AmdSensor, normalise_celsius
from benchd.telemetry.apple import AppleSensor
from benchd.telemetry.base import Reading, Sensor, SensorUnavailableError, probe
from benchd.telemetry.cpu import CpuSensor, RaplSensor
from benchd.telemetry.nvidia import NvmlSensor
from benchd.telemetry.sampler import Sampler


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
FUNCTION_NOT_FOUND = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch):
    """One GPU behind the real pynvml API: every call replaced by an autospec'd mock."""

    def patch(name: str, **behaviour):
        fake = mock.create_autospec(getattr(pynvml, name), **behaviour)
        monkeypatch.setattr(pynvml, name, fake)
        return fake

    field = types.SimpleNamespace(nvmlReturn=pynvml.NVML_SUCCESS, value=types.SimpleNamespace(uiVal=250_000))
    fakes = {
        "nvmlInit": patch("nvmlInit", return_value=None),
        "nvmlShutdown": patch("nvmlShutdown", return_value=None),
        "count": patch("nvmlDeviceGetCount", return_value=1),
        "handle": patch("nvmlDeviceGetHandleByIndex", return_value="handle-0"),
        "uuid": patch("nvmlDeviceGetUUID", return_value="GPU-1234-abcd"),
        "fields": patch("nvmlDeviceGetFieldValues", return_value=[field]),
        "power": patch("nvmlDeviceGetPowerUsage", return_value=240_000),
        "energy": patch("nvmlDeviceGetTotalEnergyConsumption", return_value=123_456),
        "temperature_v": patch("nvmlDeviceGetTemperatureV", return_value=65),
        "temperature": patch("nvmlDeviceGetTemperature", return_value=66),
        "memory": patch("nvmlDeviceGetMemoryInfo", return_value=types.SimpleNamespace(used=2_000_000_000)),
        "utilization": patch("nvmlDeviceGetUtilizationRates", return_value=types.SimpleNamespace(gpu=87)),
        "clock": patch(
            "nvmlDeviceGetClockInfo",
            side_effect=lambda _h, kind: 1980 if kind == pynvml.NVML_CLOCK_SM else 2619,
        ),
        "limit": patch("nvmlDeviceGetEnforcedPowerLimit", return_value=300_000),
        "pcie_generation": patch("nvmlDeviceGetCurrPcieLinkGeneration", return_value=4),
        "pcie_width": patch("nvmlDeviceGetCurrPcieLinkWidth", return_value=16),
        "reasons": patch("nvmlDeviceGetCurrentClocksEventReasons", return_value=0x4 | 0x1),
        "processes": patch("nvmlDeviceGetComputeRunningProcesses", return_value=[object(), object()]),
        "mig_mode": patch("nvmlDeviceGetMigMode", side_effect=nvml_error(NOT_SUPPORTED)),  # no MIG
        "mig_slots": patch("nvmlDeviceGetMaxMigDeviceCount", return_value=7),
        "mig_handle": patch("nvmlDeviceGetMigDeviceHandleByIndex"),
    }
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fakes


def test_nvml_values_and_units(fake_gpu) -> None:
    sensor = NvmlSensor()
    assert sensor.open() == ("cuda:0",)
    (reading,) = sensor.read(10.0)
    assert reading.power_watts == 250.0 and reading.power_kind == "instant"  # mW -> W
    assert reading.energy_joules == pytest.approx(123.456)  # mJ -> J
    assert reading.temperature_celsius == 65.0
    assert reading.memory_used_bytes == 2_000_000_000
    assert reading.utilization_ratio == pytest.approx(0.87)
    assert reading.sm_clock_hertz == 1.98e9 and reading.memory_clock_hertz == 2.619e9  # MHz -> Hz
    assert reading.throttle_reasons == ("sw_power_cap",)  # idle is not a throttle
    assert reading.power_limit_watts == 300.0  # mW -> W
    assert (reading.pcie_generation, reading.pcie_width) == (4, 16)
    assert reading.processes == 2


def test_nvml_fallbacks(fake_gpu) -> None:
    fake_gpu["fields"].side_effect = nvml_error(NOT_SUPPORTED)
    fake_gpu["temperature_v"].side_effect = nvml_error(FUNCTION_NOT_FOUND)
    fake_gpu["energy"].side_effect = nvml_error(NOT_SUPPORTED)
    sensor = NvmlSensor()
    sensor.open()
    (reading,) = sensor.read(1.0)
    assert (reading.power_watts, reading.power_kind) == (240.0, "average")
    assert reading.temperature_celsius == 66.0
    assert reading.energy_joules is None
    sensor.read(2.0)
    assert fake_gpu["energy"].call_count == 1  # a GPU without the counter is not asked again
    assert fake_gpu["fields"].call_count == 1


def test_gpu_without_energy_counter_falls_back_to_integration(fake_gpu) -> None:
    fake_gpu["energy"].side_effect = nvml_error(NOT_SUPPORTED)
    sensor = NvmlSensor()
    sensor.open()
    readings = [r for t in (0.0, 0.5, 1.0, 1.5, 2.0) for r in sensor.read(t)]
    figures = aggregate.epoch_telemetry(readings, 0.0, 2.0)["domains"]["cuda:0"]
    assert figures["energy_joules"] == {"value": pytest.approx(500.0), "source": "integrated"}
    assert figures["average_power_watts"]["value"] == pytest.approx(250.0)
    assert figures["other_processes"] is True


def test_nvml_missing_driver_and_lost_gpu(fake_gpu) -> None:
    fake_gpu["nvmlInit"].side_effect = nvml_error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    state = probe(NvmlSensor())
    assert not state.available and state.reason.startswith("unavailable: NVML could not start")
    fake_gpu["nvmlInit"].side_effect = None
    fake_gpu["memory"].side_effect = nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
    sampler = Sampler([NvmlSensor(), CpuSensor(root=Path("/nonexistent"))]).open()
    sampler.sample_now()
    sampler.sample_now()
    assert sampler.errors["nvml"] == 2
    assert "GpuIsLost" in sampler.last_error["nvml"]
    assert "cpu" in sampler.latest()  # the other backend goes on


def test_cuda_visible_devices_maps_torch_indices(fake_gpu, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpu["count"].return_value = 3
    fake_gpu["handle"].side_effect = lambda index: f"handle-{index}"
    fake_gpu["uuid"].side_effect = lambda handle: f"GPU-{handle[-1]}aaaa"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2,0")
    sensor = NvmlSensor()
    assert sensor.open() == ("cuda:0", "cuda:1")
    assert [found.handle for _device, found in sensor._devices] == ["handle-2", "handle-0"]


@pytest.fixture
def mig_host(fake_gpu):
    """GPU 0 in MIG mode with instances in slots 0 and 2, GPU 1 without MIG; each call by its handle."""
    gpus = {0: "gpu-0", 1: "gpu-1"}
    instances = {("gpu-0", 0): "mig-0-0", ("gpu-0", 2): "mig-0-2"}
    fake_gpu["count"].return_value = 2
    fake_gpu["handle"].side_effect = gpus.__getitem__
    uuids = {"gpu-0": "GPU-aaaa", "gpu-1": "GPU-bbbb", "mig-0-0": "MIG-1111", "mig-0-2": "MIG-2222"}
    fake_gpu["uuid"].side_effect = uuids.__getitem__
    fake_gpu["mig_mode"].side_effect = lambda handle: (
        (pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE)
        if handle == "gpu-0"
        else (pynvml.NVML_DEVICE_MIG_DISABLE, pynvml.NVML_DEVICE_MIG_DISABLE)
    )

    def instance(gpu: str, slot: int) -> str:
        if (gpu, slot) not in instances:
            raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
        return instances[(gpu, slot)]

    fake_gpu["mig_handle"].side_effect = instance
    fake_gpu["power"].side_effect = lambda handle: {"gpu-0": 300_000, "gpu-1": 100_000}[handle]
    fake_gpu["fields"].side_effect = nvml_error(NOT_SUPPORTED)
    fake_gpu["memory"].side_effect = lambda handle: types.SimpleNamespace(used=len(handle) * 1_000_000)
    fake_gpu["processes"].side_effect = lambda handle: (
        [types.SimpleNamespace(pid=1)] * (3 if handle == "mig-0-2" else 1)
    )
    return fake_gpu


def test_mig_instances_are_devices_with_their_gpus_sensors(mig_host) -> None:
    sensor = NvmlSensor()
    assert sensor.open() == ("cuda:0", "cuda:1", "cuda:2")  # two instances of GPU 0, then GPU 1
    first, second, plain = sensor.read(1.0)
    assert (first.power_watts, second.power_watts, plain.power_watts) == (300.0, 300.0, 100.0)
    assert (first.sensor_uuid, second.sensor_uuid, plain.sensor_uuid) == ("GPU-aaaa", "GPU-aaaa", None)
    assert (first.memory_used_bytes, plain.memory_used_bytes) == (7_000_000, 5_000_000)  # their own
    assert (first.processes, second.processes) == (1, 3)
    figures = aggregate.epoch_telemetry([*sensor.read(1.0), *sensor.read(2.0)], 1.0, 2.0)["domains"]
    assert figures["cuda:1"]["sensors_of"] == "GPU-aaaa" and "sensors_of" not in figures["cuda:2"]


def test_the_busy_check_counts_a_mig_instances_own_processes(mig_host, monkeypatch) -> None:
    from benchd.telemetry.nvml_devices import compute_process_pids

    assert len(compute_process_pids("cuda:1") or []) == 3 and len(compute_process_pids("cuda:0") or []) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-2222,GPU-bbbb")
    assert len(compute_process_pids("cuda") or []) == 3  # cuda:0 is now that instance
    sensor = NvmlSensor()
    assert sensor.open() == ("cuda:0", "cuda:1")
    assert [found.uuid for _device, found in sensor._devices] == ["MIG-2222", "GPU-bbbb"]
    assert compute_process_pids("cuda:5") is None  # no such device: NVML cannot tell


def test_device_info_names_each_gpu_by_the_uuid_dcgm_exporter_uses_from_start_up(mig_host) -> None:
    """Before any run: the GPU's UUID (a MIG instance's GPU's) and the instance's own, from NVML."""
    from prometheus_client import CollectorRegistry

    from benchd.server.metrics import BenchdCollector, DaemonFacts
    from benchd.telemetry.nvml_devices import identities

    found = identities()
    assert found == {
        "cuda:0": {"uuid": "GPU-aaaa", "mig_uuid": "MIG-1111"},
        "cuda:1": {"uuid": "GPU-aaaa", "mig_uuid": "MIG-2222"},
        "cuda:2": {"uuid": "GPU-bbbb", "mig_uuid": ""},
    }
    devices = [{"id": d, "type": "cuda", "name": "Test GPU"} for d in found]
    facts = DaemonFacts(torch_version="2.0.0-test", devices=devices, identities=found)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BenchdCollector(mock.Mock(snapshot=Scoreboard().snapshot), mock.Mock(
        queue_length=lambda: 0, active_runs=list, worker_failure=lambda: None), mock.Mock(writable=True),
        lambda: facts))  # fmt: skip
    labels = {"device": "cuda:1", "type": "cuda", "name": "Test GPU", "uuid": "GPU-aaaa",
              "mig_uuid": "MIG-2222", "driver_version": "", "torch_version": "2.0.0-test"}  # fmt: skip
    assert registry.get_sample_value("benchd_device_info", labels) == 1.0


def make_zone(path: Path, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> None:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    base = tmp_path / "class" / "powercap"
    make_zone(base / "intel-rapl:0", "package-0", 1_000_000)
    make_zone(base / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000)
    make_zone(base / "intel-rapl:0" / "intel-rapl:0:1", "dram", 2_000_000)
    make_zone(base / "intel-rapl:1", "package-1", 5_000_000, max_uj=10_000_000)
    return tmp_path


def set_energy(root: Path, zone: str, value: int) -> None:
    matches = list((root / "class" / "powercap").rglob(zone))
    (matches[0] / "energy_uj").write_text(f"{value}\n")


def test_rapl_deltas_several_packages_and_wraparound(powercap: Path) -> None:
    sensor = RaplSensor(root=powercap)
    assert sensor.open() == ("package-0", "dram-0", "package-1", "cpu")
    start = {r.domain: r.energy_joules for r in sensor.read(0.0)}
    assert start == {"package-0": 0.0, "dram-0": 0.0, "package-1": 0.0, "cpu": 0.0}
    set_energy(powercap, "intel-rapl:0", 11_000_000)  # +10 J
    set_energy(powercap, "intel-rapl:0:1", 3_000_000)  # +1 J
    set_energy(
        powercap, "intel-rapl:1", 2_000_000
    )  # wrapped at 10 J: +7 J (5 -> 10 -> 0 -> 2, plus the 1 uJ step)
    end = {r.domain: r.energy_joules for r in sensor.read(1.0)}
    assert end["package-0"] == pytest.approx(10.0)
    assert end["dram-0"] == pytest.approx(1.0)
    assert end["package-1"] == pytest.approx(7.000001)
    assert end["cpu"] == pytest.approx(17.000001)


def test_rapl_permission_denied_says_root_only(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_read_text = Path.read_text

    def denied(path: Path, *args, **kwargs) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    state = probe(RaplSensor(root=powercap))
    assert not state.available
    assert "readable only by root" in state.reason
    assert "read-only" in state.hint and "world-readable" not in state.hint


def test_hwmon_cpu_temperature(tmp_path: Path) -> None:
    for index, (name, millidegrees) in enumerate(
        [("k10temp", 61_500), ("nvme", 90_000), ("coretemp", 58_000)]
    ):
        hwmon = tmp_path / "class" / "hwmon" / f"hwmon{index}"
        hwmon.mkdir(parents=True)
        (hwmon / "name").write_text(name)
        (hwmon / "temp1_input").write_text(str(millidegrees))
    sensor = CpuSensor(root=tmp_path)
    sensor.open()
    (reading,) = sensor.read(0.0)
    assert reading.temperature_celsius == 61.5  # the disk's 90 C is not the CPU's
    assert 0.0 <= reading.utilization_ratio <= 1.0


def test_apple_backend_with_a_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    energy = {"cpu_total_mj": 1000.0, "gpu_mj": 5000.0, "ane_mj": 0.0, "dram_mj": None}

    class FakeMonitor:
        def get_cumulative_energy(self):
            return types.SimpleNamespace(**energy)

    monkeypatch.setitem(
        sys.modules, "zeus_apple_silicon", types.SimpleNamespace(AppleEnergyMonitor=FakeMonitor)
    )
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    sensor = AppleSensor()
    assert sensor.open() == ("cpu", "mps", "ane")
    energy["gpu_mj"] = 7500.0
    readings = {r.domain: r.energy_joules for r in sensor.read(1.0)}
    assert readings == {"cpu": 1.0, "mps": 7.5, "ane": 0.0}


def test_apple_backend_elsewhere_is_unavailable_with_a_reason() -> None:
    state = probe(AppleSensor())
    assert not state.available and state.reason


def fake_amdsmi(temperature, power_watts: float, energy_counts: list[int]) -> types.SimpleNamespace:
    counts = iter(energy_counts)
    return types.SimpleNamespace(
        amdsmi_init=lambda: None,
        amdsmi_shut_down=lambda: None,
        amdsmi_get_processor_handles=lambda: ["gpu0"],
        amdsmi_get_power_info=lambda handle: {
            "current_socket_power": power_watts,
            "average_socket_power": "N/A",
        },
        amdsmi_get_temp_metric=lambda handle, kind, metric: temperature,
        amdsmi_get_energy_count=lambda handle: {
            "energy_accumulator": next(counts),
            "counter_resolution": 15.3,
        },
        AmdSmiTemperatureType=types.SimpleNamespace(HOTSPOT=1),
        AmdSmiTemperatureMetric=types.SimpleNamespace(CURRENT=0),
    )


def test_amd_backend_range_checks_and_validates_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    per_second = round(300 / 15.3e-6)  # counts for 300 J at 15.3 uJ per count
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi(65_000, 300.0, [0, per_second, 2 * per_second]))
    sensor = AmdSensor()
    assert sensor.open() == ("cuda:0",)
    first, second, third = (sensor.read(float(t))[0] for t in range(3))
    assert first.temperature_celsius == 65.0  # millidegrees recognised
    assert first.energy_joules is None  # not trusted until checked against power
    assert second.energy_joules == pytest.approx(300.0, rel=1e-3)
    assert third.energy_joules == pytest.approx(600.0, rel=1e-3)


def test_amd_energy_that_disagrees_with_power_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = round(3 / 15.3e-6)  # 3 J a second against 300 W reported
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi(70, 300.0, [0, wrong, 2 * wrong]))
    sensor = AmdSensor()
    sensor.open()
    assert all(sensor.read(float(t))[0].energy_joules is None for t in range(3))
    assert [normalise_celsius(v) for v in (-273, 500, 5_000_000, "N/A")] == [None, None, None, None]


def trace(counter: bool, power) -> list[Reading]:
    """Samples every 0.1 s from t=0 to t=10 of a known power curve, with or without its energy counter."""
    readings = []
    for step in range(101):
        t = step / 10
        energy = None
        if counter:
            energy = sum(power(i / 1000) for i in range(int(t * 1000))) / 1000  # fine-grained integral
        readings.append(Reading(t=t, domain="cuda:0", power_watts=power(t), energy_joules=energy))
    return readings


def test_time_throttled_by_reason_clocks_limit_and_link_per_epoch() -> None:
    def gpu(t: float, clock: float, *reasons: str) -> Reading:
        return Reading(t=t, domain="cuda:0", sm_clock_hertz=clock, memory_clock_hertz=2.6e9,
                       throttle_reasons=reasons, power_limit_watts=300.0, pcie_generation=4,
                       pcie_width=16)  # fmt: skip

    readings = [gpu(0.0, 1.98e9), gpu(1.0, 1.5e9, "sw_power_cap"),
                gpu(2.5, 1.2e9, "sw_power_cap", "hw_slowdown"), gpu(3.0, 1.9e9), gpu(4.0, 1.9e9)]  # fmt: skip
    figures = aggregate.epoch_telemetry(readings, 0.0, 4.0)["domains"]["cuda:0"]
    # Each interval counts for the reasons its first sample saw: power cap 1.0-3.0, slowdown 2.5-3.0.
    assert figures["throttle_seconds"] == {
        "hw_slowdown": pytest.approx(0.5),
        "sw_power_cap": pytest.approx(2.0),
    }
    assert figures["mean_sm_clock_hertz"]["value"] == pytest.approx(1.696e9)
    assert figures["min_sm_clock_hertz"] == {"value": 1.2e9, "source": "sampled"}
    assert figures["power_limit_watts"]["value"] == 300.0 and figures["pcie_link"] == {
        "generation": 4,
        "width": 16,
    }
    calm = aggregate.epoch_telemetry([gpu(0.0, 1.9e9), gpu(1.0, 1.9e9)], 0.0, 1.0)["domains"]["cuda:0"]
    assert calm["throttle_seconds"] == {}  # measured, and never held down
    cpu = aggregate.epoch_telemetry([Reading(t=0.0, domain="cpu", temperature_celsius=50.0)] * 2, 0.0, 1.0)
    assert "throttle_seconds" not in cpu["domains"]["cpu"]  # not measured: absent, never 0


def test_a_multi_gpu_host_exports_clocks_limits_and_events_for_every_device(fake_gpu) -> None:
    from prometheus_client import CollectorRegistry

    from benchd.server.metrics import BenchdCollector, DaemonFacts

    fake_gpu["count"].return_value = 2
    fake_gpu["handle"].side_effect = lambda index: f"handle-{index}"
    fake_gpu["uuid"].side_effect = lambda handle: f"GPU-{handle[-1]}aaaa"
    fake_gpu["reasons"].side_effect = lambda handle: 0x40 if handle == "handle-1" else 0x1  # one runs hot
    sampler = Sampler([NvmlSensor()]).open()
    sampler.sample_now()
    registry = CollectorRegistry()
    registry.register(BenchdCollector(mock.Mock(snapshot=Scoreboard().snapshot), mock.Mock(
        queue_length=lambda: 0, active_runs=list, worker_failure=lambda: None), mock.Mock(writable=True),
        DaemonFacts, sampler=sampler))  # fmt: skip
    for device in ("cuda:0", "cuda:1"):
        assert registry.get_sample_value("benchd_sensor_sm_clock_hertz", {"device": device}) == 1.98e9
        assert registry.get_sample_value("benchd_sensor_power_limit_watts", {"device": device}) == 300.0
    hot = {"device": "cuda:1", "reason": "hw_thermal_slowdown"}
    assert registry.get_sample_value("benchd_sensor_clock_event_active", hot) == 1.0
    assert registry.get_sample_value("benchd_sensor_clock_event_active", {**hot, "device": "cuda:0"}) == 0.0
    sampler.stop()


def test_known_energy_from_a_counter() -> None:
    figures = aggregate.epoch_telemetry(trace(True, lambda t: 100.0), 2.0, 7.0)["domains"]["cuda:0"]
    assert figures["energy_joules"]["source"] == "counter"
    assert figures["energy_joules"]["value"] == pytest.approx(500.0, rel=0.01)
    assert figures["average_power_watts"]["value"] == pytest.approx(100.0, rel=0.01)


def test_known_energy_integrated_from_power() -> None:
    ramp = lambda t: 50.0 + 10.0 * t  # noqa: E731 - the curve is the test's data
    result = aggregate.epoch_telemetry(trace(False, ramp), 2.05, 7.05)
    figures = result["domains"]["cuda:0"]
    expected = 50.0 * 5 + 5.0 * (7.05**2 - 2.05**2)
    assert figures["energy_joules"] == {"value": pytest.approx(expected, rel=0.01), "source": "integrated"}
    assert figures["average_power_watts"]["value"] == pytest.approx(expected / 5, rel=0.01)
    assert figures["peak_power_watts"] == {"value": pytest.approx(120.0), "source": "sampled"}
    assert result["low_confidence"] is False


def test_empty_and_short_windows() -> None:
    result = aggregate.epoch_telemetry([], 0.0, 5.0)
    assert result == {"domains": {}, "low_confidence": True}
    short = aggregate.epoch_telemetry(trace(True, lambda t: 10.0), 1.0, 1.5)
    assert short["low_confidence"] is True
    assert short["domains"]["cuda:0"]["energy_joules"]["value"] == pytest.approx(5.0, rel=0.02)


def test_baseline_power_and_temperature() -> None:
    readings = [
        Reading(t=t / 10, domain="cpu", energy_joules=t * 2.0, temperature_celsius=40.0) for t in range(11)
    ]
    assert aggregate.baseline(readings) == {
        "cpu": {
            "power_watts": {"value": pytest.approx(20.0), "source": "counter"},
            "temperature_celsius": {"value": 40.0, "source": "sampled"},
        }
    }


class ExplodingSensor(Sensor):
    name = "exploding"

    def open(self) -> tuple[str, ...]:
        return ("x",)

    def read(self, t: float) -> list[Reading]:
        raise OSError("sensor fell off the bus")


class UnavailableSensor(Sensor):
    name = "absent"

    def open(self) -> tuple[str, ...]:
        raise SensorUnavailableError("not here", "plug it in")

    def read(self, t: float) -> list[Reading]:
        raise AssertionError("never read")


def test_sampler_counts_errors_and_keeps_going() -> None:
    sampler = Sampler([ExplodingSensor(), UnavailableSensor(), CpuSensor(root=Path("/nonexistent"))]).start()
    try:
        for _ in range(3):
            sampler.sample_now()
    finally:
        sampler.stop()
    assert sampler.errors["exploding"] >= 3
    assert [(s.sensor, s.available) for s in sampler.availability] == [
        ("exploding", True), ("absent", False), ("cpu", True)
    ]  # fmt: skip
    assert sampler.availability[1].reason == "unavailable: not here"
    assert sampler.window(0, float("inf"))  # the CPU still produced readings


class SlowSensor(Sensor):
    """Holds each read open for a moment and records how many reads overlapped."""

    name = "slow"

    def __init__(self) -> None:
        self.active = self.most = 0
        self.guard = threading.Lock()

    def open(self) -> tuple[str, ...]:
        return ("x",)

    def read(self, t: float) -> list[Reading]:
        with self.guard:
            self.active += 1
            self.most = max(self.most, self.active)
        threading.Event().wait(0.05)  # widens the window in which an unserialised read would overlap
        with self.guard:
            self.active -= 1
        return [Reading(t=t, domain="x")]


def test_concurrent_samples_read_one_at_a_time() -> None:
    """The sampler thread and a run's window edges sample at once; counters (RAPL's unwrapping) need one read
    at a time."""
    sensor = SlowSensor()
    sampler = Sampler([sensor]).open()
    threads = [threading.Thread(target=sampler.sample_now) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sensor.most == 1
    assert len(sampler.window(0, float("inf"))) == 4
