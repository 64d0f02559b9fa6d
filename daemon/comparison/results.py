"""One measured result, whichever source it came from: a run in a bundle, or series in Prometheus.

Both sources become the same record so that one piece of code builds the
table: the figures of a config's run on one device of one machine, with the
config described by the same labels `benchd_config_info` carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchd.results.bundle import Bundle
from benchd.results.model import Outcome, Run

# Extra figures a cell can show on request, each the run's median over its representative epochs.
EXTRAS = ("memory", "temperature", "power", "energy", "flops", "mfu")


@dataclass(frozen=True)
class Column:
    """A machine's device: where a column's figures were measured."""

    host: str
    device_type: str
    device_name: str

    @property
    def label(self) -> str:
        return f"{self.host} {self.device_name} ({self.device_type.upper()})"


@dataclass(frozen=True)
class Result:
    column: Column
    workload: str
    preset: str
    config_id: str | None  # None: the run failed before it knew its data, so its config is unknown
    labels: dict[str, str]  # what the config is (Run.config_labels)
    fraction: float
    outcome: str
    epoch_seconds: (
        float | None
    )  # representative epoch, as measured (a fraction of an epoch when fraction < 1)
    finished_at: float
    contended: bool = False
    extras: dict[str, float] = field(default_factory=dict)  # EXTRAS measured, in base units
    variation: float | None = None  # the source's own CV of the config's recent runs (Prometheus: a metric)
    software: dict[str, str] = field(default_factory=dict)  # benchd, torch and driver versions, where known
    machine: str = ""  # the host in a few words: OS, CPU, memory (a bundle's system), where known

    @property
    def suite(self) -> str:
        return self.labels.get("suite", "")


def _column(run: Run, host: str) -> Column:
    device_type = run.device_type or run.requested_device.split(":")[0]
    return Column(host, device_type, run.device_name or device_type)


def _extras(run: Run) -> dict[str, float]:
    sensors, compute = run.energy_summary(), run.compute_summary()
    figures = {
        "memory": run.peak_device_bytes,
        "temperature": sensors.get("max_temperature_celsius"),
        "power": sensors.get("average_power_watts"),
        "energy": sensors.get("energy_joules"),
        "flops": compute.get("flops_per_second"),
        "mfu": compute.get("mfu_ratio"),
    }
    return {name: float(value) for name, value in figures.items() if value is not None}


def from_bundle(bundle: Bundle) -> list[Result]:
    """A bundle's finished runs that measured something or failed trying (not cancelled or skipped)."""
    results = []
    for run in bundle.runs:
        if run.outcome is None or run.outcome in (Outcome.CANCELLED, Outcome.SKIPPED):
            continue
        host = str((run.system or {}).get("hostname") or bundle.hostname)
        summary = run.summary if run.outcome == Outcome.OK else None
        results.append(
            Result(
                column=_column(run, host),
                workload=run.workload,
                preset=run.preset,
                config_id=run.config_id,
                labels=run.config_labels(),
                fraction=run.fraction,
                outcome=run.outcome,
                epoch_seconds=summary.epoch_seconds if summary else None,
                finished_at=run.finished_at or run.queued_at,
                contended=run.contended,
                extras=_extras(run),
                software=_software(run),
                machine=_machine(run.system or bundle.host),
            )
        )
    return results


def _software(run: Run) -> dict[str, str]:
    found = {"benchd": run.benchd_version, "torch": run.torch_version, "driver": run.driver_version}
    return {name: version for name, version in found.items() if version}


def _machine(system: dict[str, object]) -> str:
    """ "Linux, AMD EPYC 7763, 512 GiB": what a report's header says of a machine."""
    memory = system.get("memory_bytes")
    size = f"{memory / 2**30:.0f} GiB" if isinstance(memory, int) else None
    parts = [system.get("os"), system.get("cpu"), size]
    return ", ".join(str(part) for part in parts if part)
