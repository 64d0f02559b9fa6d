"""A config's baseline, and whether a new result is slower than it by more than its own noise.

One definition for the daemon's `benchd_baseline_*` metrics (and so the
regression alert) and for the CI gate of `benchd run` and `trigger --wait`
(`--max-slowdown`): the median of the config's previous BASELINE_RUNS ok,
uncontended runs, and their spread (median absolute deviation over the
median), which says how much a run of this config usually moves.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

BASELINE_RUNS = 10
MIN_BASELINE_RUNS = 3  # fewer previous runs are not yet a baseline to gate on
NOISE_FACTOR = 3.0  # a slowdown must also exceed this many times the config's usual spread


@dataclass(frozen=True)
class Baseline:
    median: float
    spread: float  # median absolute deviation over the median
    runs: int


def baseline_of(previous: list[float]) -> Baseline | None:
    """The baseline of the most recent BASELINE_RUNS representative epochs given (oldest first)."""
    chosen = previous[-BASELINE_RUNS:]
    if not chosen:
        return None
    middle = statistics.median(chosen)
    spread = statistics.median(abs(v - middle) for v in chosen) / middle if middle > 0 else 0.0
    return Baseline(middle, spread, len(chosen))


@dataclass(frozen=True)
class Verdict:
    seconds: float
    baseline: Baseline | None
    slower: bool  # beyond the allowed slowdown and beyond the config's noise

    @property
    def change(self) -> float | None:
        """How much slower (+) or faster (-) than the baseline, as a fraction of it."""
        if self.baseline is None or self.baseline.median <= 0:
            return None
        return self.seconds / self.baseline.median - 1

    def line(self, max_slowdown: float) -> str:
        if self.baseline is None or self.baseline.runs < MIN_BASELINE_RUNS:
            runs = 0 if self.baseline is None else self.baseline.runs
            return (
                f"{self.seconds:.3f} s; no baseline yet ({runs} previous ok runs, {MIN_BASELINE_RUNS} needed)"
            )
        change = self.change or 0.0
        noise = NOISE_FACTOR * self.baseline.spread
        verdict = "SLOWER" if self.slower else "ok"
        against = (
            f"a baseline of {self.baseline.median:.3f} s (median of {self.baseline.runs}, noise {noise:.1%})"
        )
        return f"{self.seconds:.3f} s against {against}: {change:+.1%}, limit {max_slowdown:.0%}: {verdict}"


def judge(seconds: float, previous: list[float], max_slowdown: float) -> Verdict:
    """A result against its config's earlier ones: slower only beyond the limit and the measured noise."""
    base = baseline_of(previous)
    if base is None or base.runs < MIN_BASELINE_RUNS or base.median <= 0:
        return Verdict(seconds, base, False)
    limit = base.median * (1 + max(max_slowdown, NOISE_FACTOR * base.spread))
    return Verdict(seconds, base, seconds > limit)


def parse_slowdown(text: str) -> float:
    """`10%` or `0.1` as 0.1; ValueError naming the text otherwise."""
    value = text.strip()
    try:
        fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a slowdown such as 10% or 0.1") from None
    if not 0 <= fraction <= 10:
        raise ValueError(f"{text!r} is not a slowdown between 0% and 1000%")
    return fraction
