"""Every config's tracker on every device, fed finished runs as they end: the verdicts the daemon exports.

The same book judges the local store for `benchd health` without a daemon,
fed the store's finished runs in order, so both give the same verdict. It
also keeps each device's latest deterministic fingerprint per config and
stack: a device whose fingerprint is wrong (health/fingerprints.py) is
`corrupt` for that config, whatever its speed.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

from benchd.health import bands as band_tables
from benchd.health import fingerprints
from benchd.health.fingerprints import Fingerprinted
from benchd.health.verdict import (
    Band,
    BandSource,
    ConfigTracker,
    DeviceVerdict,
    Health,
    Policy,
    device_verdicts,
)
from benchd.results.model import Origin, Run

PeriodKey = tuple[str, str]  # workload, preset: a schedule's period applies to every config it runs
StackKey = tuple[str, str]  # config id, stack id


class HealthBook:
    def __init__(
        self,
        policy: Policy | None = None,
        external: Mapping[BandSource, Mapping[band_tables.BandKey, Band]] | None = None,
        fleet: Iterable[tuple[StackKey, Fingerprinted]] = (),
    ) -> None:
        self.policy = policy or Policy()
        self._external = dict(external or {})
        self._trackers: dict[tuple[str, str], ConfigTracker] = {}
        # (config, stack) -> device -> its latest deterministic run's vote; the fleet's, from elsewhere
        self._votes: dict[StackKey, dict[str, Fingerprinted]] = defaultdict(dict)
        self._fleet: dict[StackKey, list[Fingerprinted]] = defaultdict(list)
        for key, voter in fleet:
            self._fleet[key].append(voter)
        self._lock = threading.Lock()

    def record(self, run: Run) -> None:
        """Count one finished run (the caller sees each once, in the order runs finish)."""
        if run.outcome is None or run.config_id is None or run.origin == Origin.SELFTEST:
            return  # a run that never knew its config says nothing about one; a selftest is no evidence
        device = run.device or run.requested_device
        summary = run.summary
        with self._lock:
            tracker = self._trackers.get((device, run.config_id))
            if tracker is None:
                external = band_tables.for_device(run.device_name or "", run.config_id, self._external)
                tracker = ConfigTracker(
                    device, run.config_id, run.workload, run.preset, self.policy, external
                )
                self._trackers[(device, run.config_id)] = tracker
            at = run.finished_at or run.queued_at
            tracker.observe(run.outcome, summary.epoch_seconds if summary else None, at, run.contended)
            voter, stack = fingerprints.vote(run), fingerprints.stack_of(run)
            if voter is not None and stack is not None:
                self._votes[(run.config_id, stack)][device] = voter

    def fingerprints(self) -> list[tuple[StackKey, Fingerprinted]]:
        """This host's devices' latest fingerprint per config and stack (benchd_determinism_info)."""
        with self._lock:
            return [(key, voter) for key, by_device in self._votes.items() for voter in by_device.values()]

    def verdicts(
        self, now: float, periods: Mapping[PeriodKey, float | None] | None = None
    ) -> list[DeviceVerdict]:
        """Each device's verdict at `now`; `periods` are the schedules' (absent: unscheduled, never stale)."""
        periods = periods or {}
        with self._lock:
            configs = {
                key: t.verdict(now, periods.get((t.workload, t.preset))) for key, t in self._trackers.items()
            }
            for (config, stack), by_device in self._votes.items():
                voters = [*by_device.values(), *self._fleet.get((config, stack), [])]
                for found in fingerprints.disagreements(voters):
                    if found.voter.source or (found.voter.device, config) not in configs:
                        continue  # another host's device: its own daemon says so
                    key = (found.voter.device, config)
                    configs[key] = dataclasses.replace(
                        configs[key], state=Health.CORRUPT, since=found.voter.finished_at,
                        divergence=found.reason, divergent_step=found.step,
                    )  # fmt: skip
        return device_verdicts(configs.values())
