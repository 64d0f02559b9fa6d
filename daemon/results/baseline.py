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
UNSTABLE_CV = 0.05  # repeated runs of one config whose times vary more than this (stdev/mean) are unstable


@dataclass(frozen=True)
class Baseline:
    median: float
    spread: float  # median absolute deviation over the median
    runs: int


def relative_spread(values: list[float]) -> float:
    """Median absolute deviation over the median: how far a value of this set usually is from its middle."""
    middle = statistics.median(values)
    return statistics.median(abs(v - middle) for v in values) / middle if middle > 0 else 0.0


def baseline_of(previous: list[float]) -> Baseline | None:
    """The baseline of the most recent BASELINE_RUNS representative epochs given (oldest first)."""
    chosen = previous[-BASELINE_RUNS:]
    if not chosen:
        return None
    return Baseline(statistics.median(chosen), relative_spread(chosen), len(chosen))


@dataclass(frozen=True)
class Verdict:
    seconds: float  # the result judged: one run's representative epoch, or the median of a set of repeats
    baseline: Baseline | None
    slower: bool  # beyond the allowed slowdown and beyond the config's noise
    runs: int = 1  # how many runs `seconds` is the median of
    spread: float = 0.0  # their median absolute deviation over their median

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
        noise = NOISE_FACTOR * max(self.baseline.spread, self.spread)
        verdict = "SLOWER" if self.slower else "ok"
        judged = f"{self.seconds:.3f} s" + (f" (median of {self.runs} runs)" if self.runs > 1 else "")
        against = (
            f"a baseline of {self.baseline.median:.3f} s (median of {self.baseline.runs}, noise {noise:.1%})"
        )
        return f"{judged} against {against}: {change:+.1%}, limit {max_slowdown:.0%}: {verdict}"


def judge(seconds: list[float], previous: list[float], max_slowdown: float) -> Verdict:
    """A set of results of one config (one run, or the repeats of one command) against the config's runs
    from before the set: the set's median is slower only beyond the limit and beyond the noise, the larger
    of the baseline's spread and the set's own. Judging each repeat alone, against a baseline that holds
    the earlier repeats, cried wolf: a faster median could still exit 3."""
    middle, spread = statistics.median(seconds), relative_spread(seconds)
    base = baseline_of(previous)
    if base is None or base.runs < MIN_BASELINE_RUNS or base.median <= 0:
        return Verdict(middle, base, False, len(seconds), spread)
    limit = base.median * (1 + max(max_slowdown, NOISE_FACTOR * max(base.spread, spread)))
    return Verdict(middle, base, middle > limit, len(seconds), spread)


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


@dataclass(frozen=True)
class Repeats:
    """Several runs of one config on one machine: how far apart their representative epochs are."""

    runs: int
    median: float
    iqr: float  # interquartile range, seconds
    cv: float  # coefficient of variation: standard deviation over the mean

    @property
    def unstable(self) -> bool:
        return self.runs >= 2 and self.cv > UNSTABLE_CV

    def to_json(self) -> dict[str, float | int | bool]:
        return {"runs": self.runs, "median_seconds": self.median, "iqr_seconds": self.iqr, "cv": self.cv,
                "unstable": self.unstable}  # fmt: skip

    def line(self) -> str:
        mark = f", unstable (over {UNSTABLE_CV:.0%})" if self.unstable else ""
        return (
            f"median {self.median:.3f} s over {self.runs} runs, IQR {self.iqr:.3f} s, CV {self.cv:.1%}{mark}"
        )


def repeats_of(seconds: list[float]) -> Repeats | None:
    if not seconds:
        return None
    if len(seconds) == 1:
        return Repeats(1, seconds[0], 0.0, 0.0)
    quartiles = statistics.quantiles(seconds, n=4, method="inclusive")
    mean = statistics.fmean(seconds)
    cv = statistics.stdev(seconds) / mean if mean > 0 else 0.0
    return Repeats(len(seconds), statistics.median(seconds), quartiles[2] - quartiles[0], cv)


def within_noise(ratio: float, *cvs: float) -> bool:
    """Whether a speed ratio of two machines is closer to 1 than twice their larger run-to-run variation."""
    noise = max(cvs, default=0.0)
    return noise > 0 and abs(ratio - 1) <= 2 * noise
