"""`--max-slowdown` on `benchd run` and `trigger --wait`: a CI gate for driver and image rollouts.

Each config's ok results (one run, or the set of repeats `--repeat` made) are
compared, as their median, with the config's baseline from before the set
(results/baseline.py: the median of its previous ok runs, with their noise).
A median slower than the baseline by more than the limit and by more than
the noise (the baseline's or the set's, whichever is larger) makes the
command exit 3, after every comparison is printed (on stderr, so `--json`
output stays clean).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from benchd.cli.app import fail, say
from benchd.results.baseline import judge, parse_slowdown
from benchd.results.model import Outcome, Run

EXIT_SLOWER = 3

MaxSlowdownOption = Annotated[
    str | None,
    typer.Option(
        "--max-slowdown",
        help="Exit 3 if a result is slower than its config's baseline (the median of its previous ok runs) "
        "by more than this (10% or 0.1) and by more than the config's usual noise.",
        show_default=False,
    ),
]


def parse_limit(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_slowdown(text)
    except ValueError as exc:
        fail(f"--max-slowdown: {exc}")


def slower_than_baseline(runs: list[Run], history: Callable[[Run], list[float]], limit: float) -> bool:
    """Print each config's ok runs (one, or the set --repeat made) against the config's baseline from
    before the first of them; True if any set's median is slower beyond the limit and the noise."""
    sets: dict[str, list[Run]] = {}
    for run in runs:
        if run.outcome == Outcome.OK and run.summary is not None and run.config_id is not None:
            sets.setdefault(run.config_id, []).append(run)
    slower = False
    for config_id, chosen in sets.items():
        first = min(chosen, key=lambda run: run.id)
        seconds = [run.summary.epoch_seconds for run in chosen if run.summary is not None]
        verdict = judge(seconds, history(first), limit)
        ids = ", ".join(str(run.id) for run in chosen)
        label = f"run{'s' if len(chosen) > 1 else ''} {ids} {first.workload} {first.preset} ({config_id})"
        say(f"gate: {label}: {verdict.line(limit)}", err=True)
        slower = slower or verdict.slower
    return slower
