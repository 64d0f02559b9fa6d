"""How fast a device verdict catches a slowdown, and how often it cries wolf, from real run histories.

Reads the ok, uncontended runs of each config with at least --min-runs of them in a results store (the
representative epochs, in the order they ran) and replays them through the verdict (benchd.health):

- Detection delay: for every starting run after the first BASELINE_RUNS, the real runs from there on
  (wrapping around) are slowed by 5%, 10% and 20%; the delay is how many slowed runs it takes to turn the
  config degraded (the goal: a 10% slowdown of a config whose CV is at most 2% within 3 runs).
- False verdicts: a device running the default schedule (every config of the default suite at its
  workload's interval: 7 configs, 91 runs a week) whose every config varies as this one does, its runs
  drawn from the config's real run-to-run ratios (median 1); degraded verdicts per 1,000 device-weeks
  (the goal: fewer than 1).

With --cv, each history's ratios are also scaled to that CV (their shape kept), to state the figures
at the goal's noise when the measured machine is noisier or quieter than that.

    python benchmarks/health_detection.py --data-dir DIR [--weeks 20000] [--cv 0.02]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

from daemon_footprint import print_checks

from benchd.catalog import suites
from benchd.health.verdict import NOISE_SIGMAS, ConfigTracker, Health, Policy
from benchd.paths import store_path
from benchd.results.baseline import BASELINE_RUNS
from benchd.results.model import Outcome
from benchd.results.store import ResultsStore
from benchd.settings.schedules import default_workloads

SLOWDOWNS = (0.05, 0.10, 0.20)
WEEK = 7 * 24 * 3600.0


def histories(data_dir: Path, min_runs: int) -> dict[str, tuple[str, list[float]]]:
    """Each config's representative epochs, oldest first, with a label: workload, preset, fraction."""
    store = ResultsStore(store_path(data_dir), read_only=True)
    try:
        runs = store.finished_runs()
    finally:
        store.close()
    found: dict[str, tuple[str, list[float]]] = {}
    for run in sorted(runs, key=lambda r: r.finished_at or 0.0):
        summary = run.summary
        if run.outcome != Outcome.OK or summary is None or run.contended or run.config_id is None:
            continue
        label = f"{run.workload} {run.preset} fraction {run.fraction:g}"
        found.setdefault(run.config_id, (label, []))[1].append(summary.epoch_seconds)
    return {config: found[config] for config in found if len(found[config][1]) >= min_runs}


def detection_delays(
    seconds: list[float], slowdown: float, policy: Policy, limit: int = 20
) -> list[int | None]:
    """For each start after the baseline: slowed runs until degraded (None: not within `limit`)."""
    delays: list[int | None] = []
    for start in range(BASELINE_RUNS, len(seconds)):
        tracker = ConfigTracker("cpu", "replay", "w", "p", policy)
        at = 0.0
        for value in seconds[:start]:
            at += 1
            tracker.observe(Outcome.OK, value, at)
        if tracker.verdict(at).state != Health.HEALTHY:
            continue  # the real history was not healthy here: not a start to measure from
        delay = None
        for index in range(limit):
            at += 1
            tracker.observe(Outcome.OK, seconds[(start + index) % len(seconds)] * (1 + slowdown), at)
            if tracker.verdict(at).state == Health.DEGRADED:
                delay = index + 1
                break
        delays.append(delay)
    return delays


def schedule_periods() -> list[float]:
    """Seconds between runs of each config of the default schedule."""
    intervals = {"6h": 6 * 3600.0, "24h": 24 * 3600.0}
    periods = []
    for workload, table in default_workloads().items():
        for _preset in suites.entry(table["suite"], workload).presets:
            periods.append(intervals[table["interval"]])
    return periods


def false_verdicts(ratios: list[float], median: float, policy: Policy, weeks: int, rng: random.Random) -> int:
    """Degraded verdicts over `weeks` device-weeks of clean runs drawn from `ratios`."""
    verdicts = 0
    for period in schedule_periods():
        tracker = ConfigTracker("cpu", "draw", "w", "p", policy)
        for at in range(BASELINE_RUNS):
            tracker.observe(Outcome.OK, median * rng.choice(ratios), float(at))
        state = Health.HEALTHY
        runs = int(weeks * WEEK / period)
        for at in range(BASELINE_RUNS, BASELINE_RUNS + runs):
            tracker.observe(Outcome.OK, median * rng.choice(ratios), float(at))
            now = tracker.verdict(float(at)).state
            if now == Health.DEGRADED and state != Health.DEGRADED:
                verdicts += 1
            state = now
    return verdicts


def cv_of(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="a data directory whose store has the runs"
    )
    parser.add_argument("--min-runs", type=int, default=20, help="configs with fewer ok runs are left out")
    parser.add_argument("--weeks", type=int, default=20_000, help="device-weeks simulated per config")
    parser.add_argument("--cv", type=float, default=None, help="also scale each history's ratios to this CV")
    parser.add_argument("--seed", type=int, default=1)
    chosen = parser.parse_args(arguments)
    policy, rng = Policy(), random.Random(chosen.seed)
    found = histories(chosen.data_dir, chosen.min_runs)
    if not found:
        print(f"no config with {chosen.min_runs} ok runs in {chosen.data_dir}", file=sys.stderr)
        return 2
    checks = []
    print(
        f"policy: {policy.beyond_runs} of {policy.window_runs} beyond max({policy.min_slowdown:.1%}, "
        f"{NOISE_SIGMAS:g} sigma); {policy.recover_runs} within to recover; "
        f"{len(schedule_periods())} scheduled configs"
    )
    for config, (label, seconds) in found.items():
        median = statistics.median(seconds)
        ratios = [value / median for value in seconds]
        variants = [("as measured", seconds, ratios)]
        if chosen.cv is not None:
            mean, scale = statistics.fmean(seconds), chosen.cv / cv_of(seconds)
            scaled = [mean + (value - mean) * scale for value in seconds]
            variants.append((f"scaled to CV {chosen.cv:.1%}", scaled, [v / median for v in scaled]))
        for name, values, drawn in variants:
            cv = cv_of(values)
            print(f"\n{label} ({config}), {len(values)} runs, {name}: median {median:.3f} s, CV {cv:.2%}")
            for slowdown in SLOWDOWNS:
                delays = detection_delays(values, slowdown, policy)
                caught = [d for d in delays if d is not None]
                within3 = sum(1 for d in caught if d <= 3) / len(delays) if delays else float("nan")
                typical = f"median {statistics.median(caught):g}, max {max(caught)}" if caught else "never"
                print(
                    f"  +{slowdown:.0%}: detected in {len(caught)}/{len(delays)} replays, "
                    f"delay {typical} runs, {within3:.0%} within 3 runs"
                )
                if slowdown == 0.10 and cv <= 0.02 + 1e-9:
                    checks.append(
                        (
                            f"{label} {name}: 10% slowdown within 3 runs in {within3:.0%} of replays",
                            within3 >= 0.99,
                            ">= 99%",
                        )
                    )
            false = false_verdicts(drawn, median, policy, chosen.weeks, rng)
            rate = 1000 * false / chosen.weeks
            print(
                f"  false degraded verdicts: {false} in {chosen.weeks:,} device-weeks = {rate:.2f} per 1,000"
            )
            if cv <= 0.02 + 1e-9:
                checks.append(
                    (f"{label} {name}: {rate:.2f} false verdicts per 1,000 device-weeks", rate < 1, "< 1")
                )
    print()
    return print_checks(checks) if checks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
