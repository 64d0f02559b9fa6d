"""What crosses the process boundary: the run spec the parent gives the child, and the events it sends back.

Parent -> child: a `RunSpec`, as JSON in the child's `--spec` argument.
Child -> parent: one JSON object per line on a dedicated pipe. Stdout is
left to libraries that print; events travel on their own file descriptor so
nothing a library writes can corrupt them. Both sides import this module,
so it stays free of torch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypedDict, cast

from benchd.catalog import CatalogError, RunConfig, checked_config

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover - exercised on Python 3.10 only
    from typing_extensions import NotRequired

PARENT_PID_VARIABLE: Final = "BENCHD_PARENT_PID"  # in the harness's environment: whom it must not outlive
STARTED: Final = "started"
EPOCH_START: Final = "epoch_start"
PROGRESS: Final = "progress"
EPOCH_END: Final = "epoch_end"
FINISHED: Final = "finished"
FAILED: Final = "failed"

EVENTS = (STARTED, EPOCH_START, PROGRESS, EPOCH_END, FINISHED, FAILED)

# Phases of an epoch in an `epoch_end` event's `phases` (seconds each; absent when not run).
PHASE_DATA_WAIT = "data_wait"
PHASE_STEPS = "steps"
PHASE_VALIDATION = "validation"
PHASE_SIDE_WORK = "side_work"
PHASES = (PHASE_DATA_WAIT, PHASE_STEPS, PHASE_VALIDATION, PHASE_SIDE_WORK)


@dataclass(frozen=True)
class RunSpec:
    """One run as the parent hands it to the child: the one definition both sides read and write."""

    config: RunConfig
    device: str  # as requested: auto, cpu, cuda:1, ...; the child resolves it
    data_dir: Path  # where the child finds (or generates) the workload's dataset
    scratch_dir: Path | None = None  # where side work writes; None: a temporary directory of the child's
    inject_bitflip: int | None = None  # `benchd selftest`: flip a weight's bit before this step (from 0)

    def to_json(self) -> str:
        return json.dumps(
            {
                **self.config.to_json(),
                "device": self.device,
                "data_dir": str(self.data_dir),
                "scratch_dir": None if self.scratch_dir is None else str(self.scratch_dir),
                **({} if self.inject_bitflip is None else {"inject_bitflip": self.inject_bitflip}),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """The spec `to_json` wrote, checked by its workload; ProtocolError names what is wrong."""
        try:
            values = json.loads(text)
            if not isinstance(values, dict):
                raise CatalogError(f"a run spec is a JSON object, not {type(values).__name__}")
            config = checked_config(values)
            device, data_dir = values.get("device"), values.get("data_dir")
            scratch = values.get("scratch_dir")
            if not isinstance(device, str) or not isinstance(data_dir, str) or not data_dir:
                raise CatalogError("device and data_dir must be strings")
            if scratch is not None and not isinstance(scratch, str):
                raise CatalogError(f"must be a string or null, got {scratch!r}", "scratch_dir")
            flip = values.get("inject_bitflip")
            if flip is not None and (isinstance(flip, bool) or not isinstance(flip, int) or flip < 0):
                raise CatalogError(f"must be a step number from 0, got {flip!r}", "inject_bitflip")
            if flip is not None and not config.deterministic:
                raise CatalogError(
                    "needs a deterministic run: a bit flip is found by its fingerprint", "inject_bitflip"
                )
        except ValueError as exc:  # bad JSON, and CatalogError
            raise ProtocolError(f"bad run spec: {exc}") from None
        return cls(config, device, Path(data_dir), None if scratch is None else Path(scratch), flip)


# Failure kinds the child reports in a `failed` event.
FAILURE_OOM = "oom"
FAILURE_ERROR = "error"


class Started(TypedDict):
    """The child found its device, built its model and found its data."""

    event: Literal["started"]
    t: float
    pid: int  # the child's, which leads the run's process group
    device: str
    device_type: str
    device_name: str
    device_total_memory_bytes: int | None
    torch_version: str
    driver_version: str | None
    precision: str
    timing: str
    workers: int  # DataLoader workers feeding the timed region
    parameters: int
    samples_per_epoch: int
    steps_per_epoch: int
    seed: int
    data: dict[str, Any]  # the dataset: name, path, kind, samples, scale, fingerprint
    system: dict[str, Any]  # the child's half of the run's system object: torch, CUDA, the accelerator
    compute: dict[
        str, Any
    ]  # compile seconds (--compile); FLOPs and the peak come with `finished` (docs/api.md)
    determinism: NotRequired[dict[str, Any]]  # deterministic runs: the software stack and its stack_id


class EpochStart(TypedDict):
    event: Literal["epoch_start"]
    t: float  # the timed region's start, after a device synchronization
    epoch: int


class Progress(TypedDict):
    event: Literal["progress"]
    t: float
    epoch: int
    step: int
    steps: int


class EpochEnd(TypedDict):
    event: Literal["epoch_end"]
    t: float  # the timed region's end, after a device synchronization
    epoch: int
    duration: float
    samples: int
    steps: int
    data_wait: float
    phases: dict[str, float]  # seconds by PHASES; they add up to duration
    validation_loss: float | None
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    loss: float
    loss_bits: NotRequired[str]  # deterministic runs: each step's loss, float32 little-endian, as hex


class Finished(TypedDict):
    event: Literal["finished"]
    t: float
    compute: NotRequired[
        dict[str, Any]
    ]  # the started event's, with FLOPs and the peak counted after the epochs
    weights_sha256: NotRequired[str]  # deterministic runs: the final weights' hash
    bitflip: NotRequired[
        str
    ]  # `benchd selftest --inject-bitflip`: which bit of which weight, before which step


class Failed(TypedDict):
    event: Literal["failed"]
    t: float
    kind: str  # FAILURE_OOM or FAILURE_ERROR
    message: str


Event = Started | EpochStart | Progress | EpochEnd | Finished | Failed


class ProtocolError(ValueError):
    """A run spec, or a line on the event pipe, that is not well-formed."""


class EventWriter:
    """Writes events to the pipe inherited from the parent.

    Each event is written with a single os.write loop and no buffering, so the
    parent sees it as soon as the child emits it, and a child that dies right
    after emitting still delivered the event.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def emit(self, event: Event) -> None:
        data = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        os.close(self._fd)


def now() -> float:
    """The events' clock: system-wide and monotonic, comparable across the two processes."""
    return time.monotonic()


def decode(line: bytes) -> Event:
    """Parse one line; raise ProtocolError naming what is wrong."""
    try:
        payload = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"event line is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ProtocolError("event line is not a JSON object")
    if payload.get("event") not in EVENTS:
        raise ProtocolError(f"unknown event {payload.get('event')!r}")
    if not isinstance(payload.get("t"), (int, float)):
        raise ProtocolError(f"event {payload['event']!r} has no numeric t")
    return cast(Event, payload)
