"""`--max-slowdown` on `benchd run` and `trigger --wait`: a CI gate for driver and image rollouts.

Each ok result is compared with its config's baseline (results/baseline.py:
the median of its previous ok runs, with their noise). A result slower than
the baseline by more than the limit and by more than the noise makes the
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
    """Print each ok run against its baseline; True if any is slower beyond the limit and the noise."""
    slower = False
    for run in runs:
        summary = run.summary
        if run.outcome != Outcome.OK or summary is None or run.config_id is None:
            continue
        verdict = judge(summary.epoch_seconds, history(run), limit)
        say(
            f"gate: run {run.id} {run.workload} {run.preset} ({run.config_id}): {verdict.line(limit)}",
            err=True,
        )
        slower = slower or verdict.slower
    return slower
