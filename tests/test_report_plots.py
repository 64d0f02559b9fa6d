"""The report's figures: one colour per machine everywhere, legends for the machines drawn, bars centred
on their ticks, a line at speed-up 1.0, and a page header saying when, with what, on which machines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from benchd.comparison import plots, render, results, table
from benchd.results.bundle import read_bundle

PUBLISHED = sorted((Path(__file__).parent / "fixtures" / "published").glob("*.json"))


@pytest.fixture(scope="module")
def comparison() -> table.Comparison:
    bundles = [read_bundle(path) for path in PUBLISHED]
    found = [result for bundle in bundles for result in results.from_bundle(bundle)]
    return table.build(found, [bundle.hostname for bundle in bundles])


def _bars_by_label(figure) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    from matplotlib.colors import to_hex

    colours: dict[str, set[str]] = {}
    for ax in figure.axes:
        for container in ax.containers:
            for bar in container:
                colours.setdefault(container.get_label(), set()).add(to_hex(bar.get_facecolor()))
    return colours


def test_each_machine_has_one_colour_in_every_figure(comparison: table.Comparison) -> None:
    seen: dict[str, set[str]] = {}
    for _title, figure in plots.drawings(comparison):
        for label, colours in _bars_by_label(figure).items():
            if not label.startswith("_"):
                seen.setdefault(label, set()).update(colours)
    assert len(seen) == len(comparison.columns)
    assert all(len(colours) == 1 for colours in seen.values()), seen
    assert len({next(iter(c)) for c in seen.values()}) == len(seen)  # and no two machines share one


def test_legends_name_only_the_machines_drawn_and_bars_sit_on_their_ticks(
    comparison: table.Comparison,
) -> None:
    for _title, figure in plots.drawings(comparison):
        for ax in figure.axes:
            legend = ax.get_legend()
            drawn = {c.get_label() for c in ax.containers if len(c) and not c.get_label().startswith("_")}
            assert {t.get_text() for t in legend.get_texts()} == drawn
            ticks = list(ax.get_xticks())
            for index in range(len(ticks)):
                centres = [bar.get_x() + bar.get_width() / 2 for c in ax.containers for bar in c
                           if abs(bar.get_x() + bar.get_width() / 2 - ticks[index]) < 0.5]  # fmt: skip
                if centres:  # the group of bars at this tick is centred on it (bars drawn side by side)
                    spread = [c - ticks[index] for c in centres]
                    assert abs(min(spread) + max(spread)) < 0.8 / len(ax.containers) + 1e-9


def test_the_speedup_figure_marks_1_and_memory_and_power_are_labelled(comparison: table.Comparison) -> None:
    drawn = dict(plots.drawings(comparison))
    (speedups,) = [figure for title, figure in drawn.items() if title.startswith("Speed-up")]
    for ax in speedups.axes:
        assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.get_lines())
    memory = next(figure for title, figure in drawn.items() if title.startswith("Peak device memory"))
    power = next(figure for title, figure in drawn.items() if title.startswith("Average power"))
    assert {ax.get_ylabel() for ax in memory.axes} == {"GB"} and {ax.get_ylabel() for ax in power.axes} == {
        "watts"
    }


def test_the_page_says_when_with_what_and_on_which_machines(comparison: table.Comparison) -> None:
    page = render.as_html(comparison, ())
    assert "Made " in page and "by benchd " in page
    for column in comparison.columns:
        assert column.label in page
    assert "torch " in page and "driver " in page


def test_a_comparison_of_synthetic_data_says_so(tmp_path: Path) -> None:
    data = json.loads(PUBLISHED[0].read_text())
    for run in data["runs"]:
        run["data"] = "synthetic"
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(data))
    bundle = read_bundle(path)
    found = table.build(results.from_bundle(bundle), [bundle.hostname])
    assert any(note.startswith("synthetic data: ") for note in render.notes(found))


def test_a_single_figure_marked_unstable_by_its_daemon_keeps_the_mark() -> None:
    cell = table.Cell(10.0, False, 1, None, None, cv=0.08)
    column = results.Column("h", "cpu", "CPU")
    empty = table.Comparison([column], [], {}, {}, {}, [], None)
    assert "unstable (runs vary 8%)" in render.cell_lines(cell, column, empty, ())
