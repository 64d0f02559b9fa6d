"""One run from start to outcome: the child's events written to the store as they arrive.

Shared by `benchd run` (foreground) and the daemon's queue, so both record
runs the same way.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd import __version__, protocol
from benchd.catalog import RunConfig, get_workload
from benchd.catalog.identity import config_id
from benchd.health import fingerprints
from benchd.hostinfo import describe_host
from benchd.lifecycle.child import (
    DEFAULT_GRACE_SECONDS,
    HARNESS_COMMAND,
    CancelToken,
    ChildResult,
    run_child,
)
from benchd.lifecycle.contention import ForeignLoad
from benchd.lifecycle.device_lock import device_lock
from benchd.lifecycle.tenants import TenantWatch
from benchd.paths import run_log_path, run_scratch_path
from benchd.results.model import Origin, Outcome
from benchd.results.store import ResultsStore
from benchd.telemetry.aggregate import baseline, epoch_telemetry
from benchd.telemetry.sampler import Sampler

BASELINE_SECONDS = 1.0

EventCallback = Callable[[protocol.Event], None]

log = logging.getLogger("benchd.lifecycle.recording")


@dataclass(frozen=True)
class RunRequest:
    """A run as the parent decided it: configuration, device, where the data lives.

    The child finds (or generates) the dataset itself and reports which it
    used in its `started` event, so the daemon never loads dataset libraries.
    """

    config: RunConfig
    device: str
    data_dir: Path
    timeout: float | None = None
    repeat: int = 0  # which of a schedule's repeated runs of this config this is: only equal ones are twins
    yield_to_tenants: bool = False  # stop (preempted) when a tenant arrives on the device mid-run
    inject_bitflip: int | None = None  # `benchd selftest`: flip a weight's bit before this step

    def child_spec(self, scratch_dir: Path) -> protocol.RunSpec:
        return protocol.RunSpec(self.config, self.device, self.data_dir, scratch_dir, self.inject_bitflip)


def _baseline(sampler: Sampler) -> dict[str, Any]:
    """Idle power and temperature over a short window before the child starts."""
    started = sampler.sample_now()
    threading.Event().wait(BASELINE_SECONDS)  # a measurement window: the sampler reads at its active rate
    ended = sampler.sample_now()
    return baseline([r for r in sampler.window(started, ended) if started <= r.t <= ended])


def queue_run(store: ResultsStore, request: RunRequest, origin: Origin = Origin.CLI) -> int:
    return store.create_run(
        request.config.to_json(),
        requested_device=request.device,
        benchd_version=__version__,
        sample_unit=get_workload(request.config.workload).sample_unit,
        timeout=request.timeout,
        origin=origin,
    )


def execute(
    store: ResultsStore,
    run_id: int,
    request: RunRequest,
    *,
    cancel: CancelToken | None = None,
    on_event: EventCallback | None = None,
    command: Sequence[str] = HARNESS_COMMAND,
    grace: float = DEFAULT_GRACE_SECONDS,
    sampler: Sampler | None = None,
    on_wait: Callable[[str], None] = lambda _holder: None,
) -> ChildResult:
    """Run the child and record everything; the run always ends with exactly one outcome.

    The run holds its device's lock (device_lock.py) from before its baseline
    to its end: if another benchmark on this host holds it, `on_wait` hears
    who, and the run waits. With a sampler, an idle baseline is taken before
    the child starts and each epoch's sensor figures are computed over its
    window as it ends. An exception here (Ctrl-C in the foreground) still
    finishes the run row before it propagates, so the store never keeps a run
    that nobody runs.
    """
    with ExitStack() as held:
        try:
            held.enter_context(device_lock(request.device, _what(run_id, request), on_wait, cancel))
        except KeyboardInterrupt:
            store.finish(run_id, Outcome.CANCELLED, message="interrupted while waiting for the device")
            raise
        return _execute(store, run_id, request, cancel, on_event, command, grace, sampler)


def _what(run_id: int, request: RunRequest) -> str:
    return f"benchd run {run_id}: {request.config.workload} {request.config.preset} on {request.device}"


class _Recorder:
    """Writes a run's events to the store as they arrive, with each epoch's sensor figures and
    foreign load measured over its window."""

    def __init__(
        self,
        store: ResultsStore,
        run_id: int,
        request: RunRequest,
        sampler: Sampler | None,
        on_event: EventCallback | None,
        cancel: CancelToken,
    ) -> None:
        self.store, self.run_id, self.request = store, run_id, request
        self.sampler, self.on_event, self.cancel = sampler, on_event, cancel
        self.epoch_starts: dict[int, float] = {}
        self.foreign: ForeignLoad | None = None  # once the child says which process group is the run
        self.tenants: TenantWatch | None = None  # watching for tenants, when the run yields to them
        self.identity: tuple[str, str, str] | None = None  # a deterministic run's config, stack and device
        self.loss_bits: list[str] = []  # a deterministic run's, epoch by epoch

    def record(self, event: protocol.Event) -> None:
        if event["event"] == protocol.STARTED:
            self._started(event)
        elif event["event"] == protocol.EPOCH_START:
            self.epoch_starts[event["epoch"]] = event["t"]
            if self.foreign is not None:
                self.foreign.mark()
            if self.sampler is not None:
                self.sampler.sample_now()  # the counters' opening values, as close to the start as we can
        elif event["event"] == protocol.EPOCH_END:
            self._epoch_end(event)
        elif event["event"] == protocol.FINISHED:
            if event.get("compute"):
                self.store.record_compute(self.run_id, event["compute"])
            if "weights_sha256" in event:
                self._fingerprinted(event)
        if self.on_event is not None:
            self.on_event(event)

    def _started(self, event: protocol.Started) -> None:
        # A child may send less than the protocol promises; what is missing stays absent.
        identity = {**self.request.config.to_json(), "precision": event.get("precision")}
        system = {**describe_host(), **(event.get("system") or {})}
        identified = config_id(identity, event.get("data") or {})
        self.store.record_started(self.run_id, event, identified, system)
        stack_id = (event.get("determinism") or {}).get("stack_id")
        if isinstance(stack_id, str) and isinstance(event.get("device"), str):
            self.identity = (identified, stack_id, event["device"])
        if isinstance(event.get("pid"), int):
            self.foreign = ForeignLoad(event["pid"], self.request.device)
            if self.request.yield_to_tenants:
                self.tenants = TenantWatch(self.request.device, event["pid"], self._tenant_arrived)
                self.tenants.start()

    def _tenant_arrived(self, reason: str) -> None:
        log.info("run %s yields %s: %s", self.run_id, self.request.device, reason)
        self.cancel.cancel(Outcome.PREEMPTED, reason)

    def close(self) -> None:
        if self.tenants is not None:
            self.tenants.stop()

    def _epoch_end(self, event: protocol.EpochEnd) -> None:
        start = self.epoch_starts.get(event["epoch"], event["t"] - event["duration"])
        telemetry = None
        if self.sampler is not None:
            self.sampler.sample_now()
            telemetry = epoch_telemetry(self.sampler.window(start, event["t"]), start, event["t"])
        measured = self.foreign.measure() if self.foreign is not None else None
        if measured is not None:
            telemetry = {**(telemetry or {}), "foreign": measured}
        self.store.add_epoch(self.run_id, event, start, telemetry)
        if "loss_bits" in event:
            self.loss_bits.append(event["loss_bits"])

    def _fingerprinted(self, event: protocol.Finished) -> None:
        """The run's fingerprint, compared with the device's first deterministic run of the config on the
        same stack (health/fingerprints.py): where they first disagree, if they do."""
        facts: dict[str, Any] = {
            "weights_sha256": event["weights_sha256"],
            "fingerprint": fingerprints.fingerprint(self.loss_bits, event["weights_sha256"]),
        }
        if "bitflip" in event:
            facts["bitflip"] = event["bitflip"]
        if self.identity is not None:
            reference = self.store.first_deterministic_run(*self.identity, before=self.run_id)
            if reference is not None:
                theirs = [epoch.loss_bits or "" for epoch in reference.epochs]
                agree = (reference.determinism or {}).get("fingerprint") == facts["fingerprint"]
                facts["compared_with"] = reference.id
                facts["first_divergent_step"] = (
                    None if agree else fingerprints.first_divergent_step(self.loss_bits, theirs)
                )
                facts["agrees"] = agree
        self.store.record_determinism(self.run_id, facts)


def _execute(
    store: ResultsStore,
    run_id: int,
    request: RunRequest,
    cancel: CancelToken | None,
    on_event: EventCallback | None,
    command: Sequence[str],
    grace: float,
    sampler: Sampler | None,
) -> ChildResult:
    log_path = run_log_path(request.data_dir, run_id)
    scratch_dir = run_scratch_path(request.data_dir, run_id)
    cancel = cancel or CancelToken()
    recorder = _Recorder(store, run_id, request, sampler, on_event, cancel)

    try:
        store.mark_running(run_id, str(log_path))
        if sampler is not None:
            sampler.set_active(True)
            store.record_baseline(run_id, _baseline(sampler))
        result = run_child(
            request.child_spec(scratch_dir).to_json(),
            log_path=log_path,
            on_event=recorder.record,
            timeout=request.timeout,
            cancel=cancel,
            command=command,
            grace=grace,
        )
    except KeyboardInterrupt:
        store.finish(run_id, Outcome.CANCELLED, message="interrupted from the terminal")
        raise
    except BaseException as exc:  # a log directory that cannot be made, a full disk, a bug: the run ends
        store.finish(run_id, Outcome.ERROR, message=f"benchd failed to start or follow the run: {exc}")
        raise
    finally:
        recorder.close()
        if sampler is not None:
            sampler.set_active(False)
        shutil.rmtree(scratch_dir, ignore_errors=True)  # the child's own cleanup did not run if it was killed
    store.finish(
        run_id,
        result.outcome,
        message=result.message,
        stderr_tail=result.stderr_tail,
        peak_host_rss_bytes=result.peak_rss_bytes,
    )
    return result
