"""The CI gate: a result against its config's baseline, beyond the limit and beyond the noise."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchd.paths import store_path
from benchd.results.baseline import judge, parse_slowdown, repeats_of, within_noise

from .test_cli import assert_bad_input, benchd


@pytest.mark.parametrize(
    ("seconds", "previous", "slower"),
    [
        (11.5, [10.0, 10.2, 9.8, 10.0], True),  # 15% slower, the noise is 3 x 1%
        (10.5, [10.0, 10.2, 9.8, 10.0], False),  # 5%: within the limit
        (12.0, [10.0, 13.0, 7.0, 10.0], False),  # 20%, but this config moves by 3 x 15% run to run
        (50.0, [10.0, 10.0], False),  # two earlier runs are not a baseline yet
        (5.0, [10.0, 10.0, 10.0], False),  # faster is never a failure
    ],
)
def test_slower_only_beyond_the_limit_and_the_noise(
    seconds: float, previous: list[float], slower: bool
) -> None:
    verdict = judge([seconds], previous, 0.10)
    assert verdict.slower is slower
    line = verdict.line(0.10)
    assert ("SLOWER" in line) is slower and (("no baseline yet" in line) is (len(previous) < 3))


@pytest.mark.parametrize(
    ("repeats", "slower"),
    [
        ([9.0, 9.1, 12.0, 8.9, 9.2], False),  # the median got faster; one repeat was slow
        ([12.0, 12.1, 11.9], True),  # every repeat 20% slower: the median is
        ([11.5, 9.0, 14.0], False),  # a median 15% slower, but the set itself spreads over 3 x 22%
    ],
)
def test_a_set_of_repeats_is_judged_by_its_median_and_its_own_spread(
    repeats: list[float], slower: bool
) -> None:
    verdict = judge(repeats, [10.0, 10.1, 9.9, 10.0], 0.10)
    assert verdict.slower is slower and verdict.runs == len(repeats)
    assert f"(median of {len(repeats)} runs)" in verdict.line(0.10)


def test_the_gate_judges_each_config_once_against_the_runs_before_its_set() -> None:
    """--repeat 5 --max-slowdown 10% exited 3 although the median got faster: each repeat was judged
    alone, against a baseline holding the earlier repeats of the same set."""
    from types import SimpleNamespace

    from benchd.cli.gate import slower_than_baseline

    def run(run_id: int, config: str, seconds: float) -> SimpleNamespace:
        return SimpleNamespace(id=run_id, config_id=config, outcome="ok", workload="vae", preset="bs128",
                               summary=SimpleNamespace(epoch_seconds=seconds))  # fmt: skip

    earlier = {"aaaaaaaaaaaa": [10.0, 10.0, 10.0, 10.0], "bbbbbbbbbbbb": [5.0, 5.0, 5.0]}
    asked: list[int] = []

    def history(first: SimpleNamespace) -> list[float]:
        asked.append(first.id)
        return earlier[first.config_id]

    faster_median = [
        run(11, "aaaaaaaaaaaa", 9.0),
        run(12, "aaaaaaaaaaaa", 13.0),
        run(13, "aaaaaaaaaaaa", 9.1),
    ]
    assert not slower_than_baseline(faster_median, history, 0.10)  # type: ignore[arg-type]
    assert asked == [11]  # once per config, from before its first run
    assert slower_than_baseline([run(14, "bbbbbbbbbbbb", 6.0), *faster_median], history, 0.10)  # type: ignore[arg-type]


def test_slowdown_limits_are_read_as_percent_or_fraction() -> None:
    assert parse_slowdown("10%") == pytest.approx(0.1) and parse_slowdown("0.25") == 0.25
    for text in ("ten", "-5%", "2000%"):
        with pytest.raises(ValueError, match=repr(text)):
            parse_slowdown(text)


def test_repeats_give_median_spread_and_an_unstable_mark() -> None:
    steady = repeats_of([10.0, 10.2, 9.8, 10.0])
    assert steady is not None and steady.median == 10.0 and steady.iqr == pytest.approx(0.1)
    assert steady.cv == pytest.approx(0.0163, abs=1e-3) and not steady.unstable
    shaky = repeats_of([10.0, 13.0, 7.0, 10.0])
    assert shaky is not None and shaky.unstable and "unstable (over 5%)" in shaky.line()
    assert within_noise(1.03, 0.02) and not within_noise(1.10, 0.02) and not within_noise(1.0)


def _copy_run(db: sqlite3.Connection, run_id: int, times: int, scale: float) -> None:
    """Earlier runs of the same config: copies of `run_id` whose epochs took `scale` times as long."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)") if row[1] != "id"]
    epoch_columns = [
        row[1] for row in db.execute("PRAGMA table_info(epochs)") if row[1] not in ("run_id", "id")
    ]
    for _ in range(times):
        new = db.execute(f"INSERT INTO runs ({', '.join(columns)}) SELECT {', '.join(columns)} FROM runs "
                         "WHERE id = ?", (run_id,)).lastrowid  # fmt: skip
        selected = ", ".join(
            f"duration_seconds * {scale}" if c == "duration_seconds" else c for c in epoch_columns
        )
        names = ", ".join(epoch_columns)
        db.execute(f"INSERT INTO epochs (run_id, {names}) SELECT ?, {selected} FROM epochs WHERE run_id = ?",
                   (new, run_id))  # fmt: skip
    db.commit()


@pytest.mark.slow
def test_run_exits_3_on_a_slowdown_against_a_seeded_baseline(data_dir: Path) -> None:
    args = ("run", "vae", "-p", "bs128", "--fraction", "0.02", "--epochs", "2", "--device", "cpu",
            "--no-telemetry", "--data-dir", str(data_dir))  # fmt: skip
    first = benchd(*args, "--repeat", "2", "--json")  # two runs in fresh children, and their spread
    assert first.returncode == 0, first.stderr
    assert "repeats: vae bs128 (" in first.stderr and " over 2 runs, IQR " in first.stderr
    runs = json.loads(first.stdout)  # the same figures where machines read them
    seconds = sorted(run["summary"]["epoch_seconds"] for run in runs)
    for run in runs:
        repeats = run["repeats"]
        assert repeats["runs"] == 2 and repeats["median_seconds"] == pytest.approx(sum(seconds) / 2)
        assert repeats["iqr_seconds"] == pytest.approx((seconds[1] - seconds[0]) / 2)
        assert repeats["unstable"] == (repeats["cv"] > 0.05)
    with sqlite3.connect(store_path(data_dir)) as db:
        _copy_run(db, 1, 3, 100.0)  # a baseline a hundred times slower than this machine
    faster = benchd(*args, "--max-slowdown", "10%")
    assert faster.returncode == 0, faster.stderr
    assert "against a baseline of" in faster.stderr and ": ok" in faster.stderr
    with sqlite3.connect(store_path(data_dir)) as db:
        _copy_run(db, 1, 10, 0.01)  # now the ten runs before are a hundred times faster
    slower = benchd(*args, "--max-slowdown", "10%", "--json")
    assert slower.returncode == 3, slower.stderr
    assert "SLOWER" in slower.stderr and slower.stdout.lstrip().startswith("[")  # the JSON is still whole
    assert_bad_input(benchd(*args, "--max-slowdown", "lots"), "--max-slowdown: 'lots' is not a slowdown")
