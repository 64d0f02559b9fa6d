"""One config's verdict on one device, confirmed over runs before it changes (docs/health.md).

Each counted run is marked within its band, beyond it, or failed. A config
turns degraded when `beyond_runs` of its last `window_runs` runs are beyond
the band, failing when as many failed where the config used to succeed, and
healthy again only after `recover_runs` runs in a row within the band. Runs
that say nothing about the device are not counted at all: preempted,
cancelled, skipped, interrupted and contended runs, and failures of a config
that never succeeded (it does not fit the device; that is not a fault).

The device's own band is the baseline of its runs judged within the band, so
a slowdown never drifts into the band it is judged against.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum

from benchd.results.baseline import MIN_BASELINE_RUNS, relative_spread
from benchd.results.model import Outcome, Word

MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation over its median absolute deviation
NOISE_SIGMAS = 3.25
"""A run is beyond its band only past this many of the band's standard deviations (estimated from its
spread): one run in about 1,700 of a steady config, which the 2-of-3 confirmation and a week's 91
scheduled runs keep under one false verdict per 1,000 device-weeks (benchmarks/health_detection.py)."""

COUNTED_FAILURES = (Outcome.OOM, Outcome.ERROR, Outcome.TIMEOUT)
"""Outcomes that count against a config that used to succeed. Interrupted runs are the daemon's doing."""


class Health(Word):
    """A verdict: the state set `benchd_device_health` exports (docs/metrics.md)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"  # slower than its band beyond its noise, confirmed
    FAILING = "failing"  # runs fail where the same config used to succeed, confirmed
    CORRUPT = "corrupt"  # a deterministic run's fingerprint disagrees (health/fingerprints.py)
    UNKNOWN = "unknown"  # no band yet, or no run for `stale_periods` schedule periods


HEALTH_STATES = tuple(Health)
SEVERITY = {Health.UNKNOWN: 0, Health.HEALTHY: 1, Health.DEGRADED: 2, Health.FAILING: 3, Health.CORRUPT: 4}


class BandSource(Word):
    """Where a band comes from; every verdict names it."""

    OWN = "own"  # the device's own previous runs of the config
    FLEET = "fleet"  # the same device model and config on other hosts (bundles or Prometheus)
    REFERENCE = "reference"  # shipped with benchd or added from a bundle (`benchd bands`)


BAND_ORDER = (BandSource.OWN, BandSource.FLEET, BandSource.REFERENCE)
BRIEF_WIDTH = 80  # node-problem-detector's default max_output_length


@dataclass(frozen=True)
class Band:
    """Where a config's representative epoch is expected to fall on a device model."""

    source: BandSource
    median: float  # seconds
    spread: float  # median absolute deviation over the median; 0 when one run is all there is
    runs: int  # how many runs (own, reference) or hosts (fleet) it is the median of
    detail: str  # what it was measured on, in a few words

    def describe(self) -> str:
        return f"{self.source} band ({self.detail}; median {self.median:.3f} s)"


@dataclass(frozen=True)
class Policy:
    """How much evidence a verdict needs (the `[health]` settings)."""

    window_runs: int = 3
    beyond_runs: int = 2
    recover_runs: int = 2
    min_slowdown: float = 0.065  # a run is beyond its band only if slower than this ...
    stale_periods: float = 2.0  # no run for this many schedule periods: unknown
    band_runs: int = 20  # the own band: the median and spread of up to this many runs within it
    bands: tuple[BandSource, ...] = BAND_ORDER  # the first one there judges

    def allowance(self, band: Band) -> float:
        """... and slower than the band's own noise allows."""
        return max(self.min_slowdown, NOISE_SIGMAS * MAD_TO_SIGMA * band.spread)

    def beyond(self, seconds: float, band: Band) -> bool:
        return seconds > band.median * (1 + self.allowance(band))


class Mark(Enum):
    WITHIN = "within"
    BEYOND = "beyond"
    FAILED = "failed"


@dataclass(frozen=True)
class Counted:
    mark: Mark
    at: float  # when the run finished (Unix time)
    seconds: float | None
    outcome: str


def _moment(at: float | None) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True)
class ConfigVerdict:
    """One config's verdict on one device, with what it was decided from."""

    device: str
    config: str
    workload: str
    preset: str
    state: Health
    band: Band | None
    ratio: float | None  # the last counted ok run over the band's median
    beyond: int  # runs of the window that were beyond the band (failed ones, when failing)
    window: int  # counted runs in the window
    since: float | None  # when the state began: the first run that confirmed it
    last_run_at: float | None
    why_unknown: str | None = None
    failures: tuple[str, ...] = ()  # outcomes of the window's failed runs
    divergence: str | None = None  # corrupt: which run disagreed with what, from which step
    divergent_step: int | None = None

    @property
    def label(self) -> str:
        return f"{self.workload} {self.preset} ({self.config})"

    def reason(self) -> str:
        """The verdict as one sentence: the config, the band, the ratio, how many runs, since when."""
        if self.state == Health.UNKNOWN:
            return f"{self.label}: {self.why_unknown}"
        if self.state == Health.CORRUPT:
            return f"{self.label}: wrong answers: {self.divergence}"
        if self.state == Health.FAILING:
            outcomes = ", ".join(sorted(set(self.failures)))
            return (f"{self.label}: {self.beyond} of the last {self.window} runs ended {outcomes} where it "
                    f"used to succeed, since {_moment(self.since)}")  # fmt: skip
        assert self.band is not None and self.ratio is not None
        against = f"{self.ratio:.2f}x the {self.band.describe()}"
        if self.state == Health.DEGRADED:
            return (f"{self.label}: {against}, {self.beyond} of the last {self.window} runs beyond it, "
                    f"since {_moment(self.since)}")  # fmt: skip
        return f"{self.label}: {against}"

    def brief(self) -> str:
        """The reason in a few words, for an 80-character line (node-problem-detector's default)."""
        what = f"{self.workload} {self.preset}"
        if self.state == Health.UNKNOWN:
            return f"{what} {'no band' if self.band is None else 'no recent run'}"
        if self.state == Health.CORRUPT:
            where = "weights" if self.divergent_step is None else f"step {self.divergent_step}"
            return f"{what} fingerprint differs at {where}"
        if self.state == Health.FAILING:
            return f"{what} {self.beyond}/{self.window} failed since {_moment(self.since)}"
        assert self.band is not None and self.ratio is not None
        window = f" {self.beyond}/{self.window}" if self.state == Health.DEGRADED else ""
        return f"{what} {self.ratio:.2f}x {self.band.source}{window}"

    def to_json(self) -> dict[str, object]:
        band = self.band
        return {
            "device": self.device,
            "config": self.config,
            "workload": self.workload,
            "preset": self.preset,
            "state": self.state.value,
            "reason": self.reason(),
            "band": None if band is None else {
                "source": band.source.value, "median_seconds": band.median, "spread": band.spread,
                "runs": band.runs, "detail": band.detail,
            },
            "ratio": self.ratio,
            "beyond_runs": self.beyond,
            "window_runs": self.window,
            "since": self.since,
            "last_run_at": self.last_run_at,
            **({"first_divergent_step": self.divergent_step} if self.state == Health.CORRUPT else {}),
        }  # fmt: skip


class ConfigTracker:
    """One config on one device, fed its finished runs in order."""

    def __init__(
        self,
        device: str,
        config: str,
        workload: str,
        preset: str,
        policy: Policy,
        external: Mapping[BandSource, Band] | None = None,
    ) -> None:
        self.device, self.config, self.workload, self.preset = device, config, workload, preset
        self.policy = policy
        self.external = dict(external or {})
        self._accepted: deque[float] = deque(maxlen=policy.band_runs)
        self._window: deque[Counted] = deque(maxlen=policy.window_runs)
        self._streak = 0  # counted runs in a row within the band
        self._state = Health.HEALTHY
        self._since: float | None = None
        self._succeeded = False
        self._last: Counted | None = None
        self._last_ok_seconds: float | None = None
        self._judged_by: Band | None = None  # the band the last ok run was judged against

    def band(self) -> Band | None:
        """The first band the policy names that exists: the own one once it has enough runs."""
        for source in self.policy.bands:
            if source == BandSource.OWN:
                runs = len(self._accepted)
                if runs >= MIN_BASELINE_RUNS:
                    detail = f"median of {runs} previous runs within it"
                    accepted = list(self._accepted)
                    return Band(
                        BandSource.OWN, statistics.median(accepted), relative_spread(accepted), runs, detail
                    )
            elif source in self.external:
                return self.external[source]
        return None

    def observe(self, outcome: str, seconds: float | None, at: float, contended: bool = False) -> None:
        """Count one finished run of the config (or leave it out, when it says nothing of the device)."""
        if outcome in COUNTED_FAILURES:
            if not self._succeeded:
                return
            counted = Counted(Mark.FAILED, at, None, outcome)
        elif outcome == Outcome.OK and seconds is not None and not contended:
            self._succeeded = True
            band = self.band()
            self._judged_by, self._last_ok_seconds = band, seconds
            beyond = band is not None and self.policy.beyond(seconds, band)
            counted = Counted(Mark.BEYOND if beyond else Mark.WITHIN, at, seconds, outcome)
            if not beyond:
                self._accepted.append(seconds)
        else:
            return
        self._last = counted
        self._window.append(counted)
        self._streak = self._streak + 1 if counted.mark == Mark.WITHIN else 0
        self._step()

    def _count(self, mark: Mark) -> list[Counted]:
        return [c for c in self._window if c.mark == mark]

    def _step(self) -> None:
        failed, beyond = self._count(Mark.FAILED), self._count(Mark.BEYOND)
        confirm = self.policy.beyond_runs
        if self._state != Health.HEALTHY and self._streak >= self.policy.recover_runs:
            self._enter(Health.HEALTHY, self._window[-1].at)
            self._window.clear()
        elif self._state != Health.FAILING and len(failed) >= confirm:
            self._enter(Health.FAILING, failed[0].at)
        elif self._state == Health.HEALTHY and len(beyond) >= confirm:
            self._enter(Health.DEGRADED, beyond[0].at)
        elif self._state == Health.FAILING and len(beyond) >= confirm:
            self._enter(Health.DEGRADED, beyond[0].at)  # it runs again, but slowly

    def _enter(self, state: Health, since: float) -> None:
        self._state, self._since = state, since

    def verdict(self, now: float, period: float | None = None) -> ConfigVerdict:
        """The verdict at `now`; `period` is the config's schedule period (None: not scheduled)."""
        band = self._judged_by if self._state == Health.DEGRADED else self.band()
        last_at = None if self._last is None else self._last.at
        state, why = self._state, None
        if self._last is None:
            state, why = Health.UNKNOWN, "no counted run yet"
        elif period is not None and now - self._last.at > self.policy.stale_periods * period:
            state, why = (
                Health.UNKNOWN,
                f"no counted run since {_moment(self._last.at)} "
                f"(over {self.policy.stale_periods:g} schedule periods)",
            )
        elif state == Health.HEALTHY and band is None:
            runs = len(self._accepted)
            state, why = (
                Health.UNKNOWN,
                f"no band yet ({runs} ok runs of the {MIN_BASELINE_RUNS} its own needs)",
            )
        ratio = None
        if band is not None and self._last_ok_seconds is not None and band.median > 0:
            ratio = self._last_ok_seconds / band.median
        marked = self._count(Mark.FAILED) if state == Health.FAILING else self._count(Mark.BEYOND)
        return ConfigVerdict(
            self.device, self.config, self.workload, self.preset, state, band, ratio, len(marked),
            len(self._window), self._since if state in (Health.DEGRADED, Health.FAILING) else None,
            last_at, why, tuple(c.outcome for c in self._count(Mark.FAILED)),
        )  # fmt: skip


@dataclass(frozen=True)
class DeviceVerdict:
    """A device's verdict: its worst config's, or healthy when any config is and none is worse."""

    device: str
    state: Health
    configs: tuple[ConfigVerdict, ...] = field(default_factory=tuple)

    @property
    def deciding(self) -> ConfigVerdict | None:
        """The config the verdict comes from: the worst, then the slowest against its band."""
        ranked = [c for c in self.configs if c.state == self.state]
        return max(ranked, key=lambda c: c.ratio or 0.0, default=None)

    def reason(self) -> str:
        deciding = self.deciding
        if deciding is None:
            return "no config of this device has a run"
        if self.state == Health.HEALTHY:
            healthy = sum(1 for c in self.configs if c.state == Health.HEALTHY)
            return f"{healthy} of {len(self.configs)} configs within their bands; slowest {deciding.reason()}"
        return deciding.reason()

    def line(self, width: int | None = None) -> str:
        """`DEVICE STATE: reason`, cut to `width` characters when given (node-problem-detector's 80)."""
        deciding = self.deciding
        if width is None:
            return f"{self.device} {self.state}: {self.reason()}"
        brief = "no run" if deciding is None else deciding.brief()
        text = f"{self.device} {self.state}: {brief}"
        return text if len(text) <= width else text[: width - 3] + "..."

    def to_json(self) -> dict[str, object]:
        return {
            "device": self.device,
            "state": self.state.value,
            "reason": self.reason(),
            "brief": self.line(BRIEF_WIDTH),
            "configs": [c.to_json() for c in self.configs],
        }


def device_verdicts(verdicts: Iterable[ConfigVerdict]) -> list[DeviceVerdict]:
    """Each device's verdict from its configs' verdicts, devices in name order."""
    by_device: dict[str, list[ConfigVerdict]] = {}
    for verdict in verdicts:
        by_device.setdefault(verdict.device, []).append(verdict)
    return [
        DeviceVerdict(device, _worst(configs), tuple(configs))
        for device, configs in sorted(by_device.items())
    ]


def _worst(configs: Sequence[ConfigVerdict]) -> Health:
    return max((c.state for c in configs), key=SEVERITY.__getitem__, default=Health.UNKNOWN)
