"""`benchd export`, `benchd compare` and `benchd report`: results across machines, from one command.

export writes a host's runs as a bundle (results/bundle.py) from its store or
its daemon; compare pivots bundles, or a Prometheus server's series, into the
published comparison's table; report makes that table and its plots one HTML
page. Bad input (a file that is not a bundle, two bundles of one host, an
unknown baseline) is one line naming the file or option, exit 2.
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from benchd.cli.app import DataDirOption, app, fail, say
from benchd.cli.remote import TokenFileOption, TokenOption, UrlOption, call, client_for

if TYPE_CHECKING:
    from benchd.comparison.table import Comparison
    from benchd.results.model import Run

FORMATS = ("table", "markdown", "csv", "json", "html")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float) -> float:
    """`7d`, `12h`, `30m`, `2w` before now, or an ISO date or time (UTC unless it says otherwise)."""
    if match := _DURATION.fullmatch(text):
        return now - int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--since: {text!r} is neither a duration (7d, 12h, 30m, 2w) nor an ISO date (2026-11-01)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return moment.timestamp()


def _local_runs(data_dir: Path | None) -> tuple[list[Run], str]:
    from benchd.paths import default_data_dir, store_path
    from benchd.results.store import ResultsStore, StoreError

    path = store_path(data_dir if data_dir is not None else default_data_dir())
    if not path.is_file():
        fail(f"no results store at {path} (--data-dir)")
    try:
        store = ResultsStore(path, read_only=True)
    except StoreError as exc:
        fail(str(exc))
    try:
        return store.finished_runs(), str(path)
    finally:
        store.close()


def _daemon_runs(url: str | None, token: str | None, token_file: Path | None) -> tuple[list[Run], str]:
    from benchd.results.model import Run

    client = client_for(url, token, token_file)
    runs = call(client, "GET", "/api/v1/runs?limit=1000")["runs"]
    return [Run.from_json(r) for r in runs if r.get("state") == "finished"], client.url


def write_text(text: str, output: Path | None) -> None:
    """To stdout, or to a file replaced whole (a half-written bundle never exists)."""
    if output is None:
        typer.echo(text, nl=False)
        return
    partial = output.with_name(f".{output.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"--output {output}: {exc.strerror or exc}")


@app.command()
def export(
    data_dir: DataDirOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs that ended since: 7d, 12h, 30m, 2w, or an ISO date.")
    ] = None,
    workload: Annotated[list[str] | None, typer.Option(help="Only this workload (repeatable).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here, not to stdout.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Write this host's finished runs as one results bundle (JSON, docs/bundle.schema.json).

    Reads the local results store (no daemon needed); with --url, asks a daemon instead.
    """
    from benchd.hostinfo import describe_host
    from benchd.results.bundle import make_bundle

    now = time.time()
    cutoff = parse_since(since, now) if since is not None else None
    runs, source = _daemon_runs(url, token, token_file) if url is not None else _local_runs(data_dir)
    chosen = [
        run
        for run in sorted(runs, key=lambda r: r.id)
        if (workload is None or run.workload in workload)
        and (cutoff is None or (run.finished_at or run.queued_at) >= cutoff)
    ]
    fallback = describe_host() if url is None else {"hostname": source}
    bundle = make_bundle(chosen, fallback, source)
    write_text(json.dumps(bundle.to_json(), indent=1) + "\n", output)
    say(f"exported {len(chosen)} run(s) of host {bundle.hostname} from {source}", err=True)


BundlesArgument = Annotated[
    list[Path] | None,
    typer.Argument(help="Bundles from `benchd export`, one per machine.", show_default=False),
]
PrometheusOption = Annotated[
    str | None, typer.Option("--prometheus", help="Compare what this Prometheus server scrapes instead.")
]
BaselineOption = Annotated[
    str | None,
    typer.Option(
        help="The machine speed-ups are against: HOST or HOST/TYPE (m1-ultra/mps), or a bundle's file "
        "(m1-ultra.json, m1-ultra.json/mps). Default: the one with the most figures."
    ),
]
SuiteOption = Annotated[str | None, typer.Option(help="Only the runs of this suite's configs (standard-v1).")]
ConfigOption = Annotated[str | None, typer.Option("--config", help="Only the runs of this config id.")]
IncludeContendedOption = Annotated[
    bool,
    typer.Option(
        "--include-contended",
        help="Where a machine has no clean figure, show its contended one (measured beside foreign load), "
        "marked; never a speed-up.",
    ),
]
ShowOption = Annotated[
    list[str] | None,
    typer.Option(
        "--show", help="Extra figures per cell (repeatable): memory, temperature, power, energy, flops, mfu."
    ),
]


def _extras(show: list[str] | None) -> tuple[str, ...]:
    from benchd.comparison.results import EXTRAS

    chosen = [name.strip() for item in show or [] for name in item.split(",") if name.strip()]
    for name in chosen:
        if name not in EXTRAS:
            fail(f"--show: unknown figure {name!r}; choose from {', '.join(EXTRAS)}")
    return tuple(dict.fromkeys(chosen))


def build_comparison(bundles: list[Path] | None, prometheus: str | None, baseline: str | None,
                     suite: str | None, config: str | None,
                     include_contended: bool = False) -> Comparison:  # fmt: skip
    """The table from bundles or from Prometheus; every way it can fail is one line, exit 2."""
    from benchd.comparison import results, table
    from benchd.comparison.prometheus import PrometheusError
    from benchd.comparison.prometheus import results as prometheus_results
    from benchd.health import fingerprints
    from benchd.results.bundle import BundleError, read_bundle

    if bool(bundles) == (prometheus is not None):
        fail("give bundle files or --prometheus URL (one of them)")
    found: list[results.Result] = []
    votes: list[fingerprints.Vote] = []
    try:
        if prometheus is not None:
            found = prometheus_results(prometheus, include_contended)
            hosts = sorted({r.column.host for r in found})
        else:
            seen: dict[str, Path] = {}
            for path in bundles or []:
                bundle = read_bundle(path)
                if bundle.hostname in seen:
                    fail(f"{path}: host {bundle.hostname} is also the host of {seen[bundle.hostname]}")
                seen[bundle.hostname] = path
                found += results.from_bundle(bundle)
                votes += fingerprints.bundle_votes(bundle.runs, bundle.hostname)
            # The bundles' order, then any host a bundle's older runs name (a renamed machine).
            hosts = list(dict.fromkeys([*seen, *(r.column.host for r in found)]))
            baseline = _bundle_host(baseline, seen)
        comparison = table.build(found, hosts, baseline=baseline, suite=suite, config=config,
                                 include_contended=include_contended)  # fmt: skip
        comparison.fingerprints = fingerprints.fleet_notes(
            vote for vote in votes if config is None or vote[0][0] == config
        )
        return comparison
    except (BundleError, PrometheusError, table.ComparisonError) as exc:
        fail(str(exc))


def _bundle_host(baseline: str | None, bundles: dict[str, Path]) -> str | None:
    """`--baseline` as a bundle's file (path, name or name without .json), keeping a `/TYPE` suffix, read
    as that bundle's host; anything else is left as the host it names."""
    if baseline is None:
        return None
    head, slash, device_type = baseline.rpartition("/")
    candidates = [(baseline, ""), *([(head, f"/{device_type}")] if slash else [])]
    for named, suffix in candidates:
        for host, path in bundles.items():
            if named in (str(path), path.name, path.stem):
                return host + suffix
    return baseline


@app.command()
def compare(
    bundles: BundlesArgument = None,
    prometheus: PrometheusOption = None,
    baseline: BaselineOption = None,
    suite: SuiteOption = None,
    config: ConfigOption = None,
    show: ShowOption = None,
    output_format: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here, not to stdout.")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Table: preset and config columns too.")] = False,
    include_contended: IncludeContendedOption = False,
) -> None:
    """The published comparison's table: workload x preset by machine x device, seconds per epoch."""
    from benchd.comparison import render

    if output_format not in FORMATS:
        fail(f"--format: {output_format!r} is not one of {', '.join(FORMATS)}")
    extras = _extras(show)
    comparison = build_comparison(bundles, prometheus, baseline, suite, config, include_contended)
    if output_format == "table" and output is None:
        from benchd.cli.report import print_table

        print_table(render.as_rich(comparison, extras, wide=wide))
        return
    texts: dict[str, Any] = {
        "table": lambda: _plain_table(comparison, extras, wide),
        "markdown": lambda: render.as_markdown(comparison, extras),
        "csv": lambda: render.as_csv(comparison),
        "json": lambda: render.as_json(comparison),
        "html": lambda: render.as_html(comparison, extras),
    }
    write_text(texts[output_format](), output)


def _plain_table(comparison: Comparison, extras: tuple[str, ...], wide: bool) -> str:
    from benchd.cli.report import plain_console
    from benchd.comparison import render

    out = io.StringIO()
    plain_console(width=240, file=out).print(render.as_rich(comparison, extras, wide=wide))
    return out.getvalue()


@app.command()
def report(
    bundles: BundlesArgument = None,
    prometheus: PrometheusOption = None,
    baseline: BaselineOption = None,
    suite: SuiteOption = None,
    config: ConfigOption = None,
    show: ShowOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    plots_dir: Annotated[
        Path | None, typer.Option(help="Also write each plot as a file in this directory.")
    ] = None,
    plot_format: Annotated[str, typer.Option(help="Plot files: svg or png.")] = "svg",
    include_contended: IncludeContendedOption = False,
) -> None:
    """One self-contained HTML page: the comparison table and its plots (needs the `report` extra)."""
    from benchd.comparison import plots, render

    if plot_format not in ("svg", "png"):
        fail(f"--plot-format: {plot_format!r} is not svg or png")
    extras = _extras(show) or ("memory", "power", "energy")
    comparison = build_comparison(bundles, prometheus, baseline, suite, config, include_contended)
    try:
        drawn = plots.drawings(comparison)
    except plots.PlottingUnavailableError as exc:
        fail(str(exc))
    write_text(render.as_html(comparison, extras, [(title, plots.svg_uri(f)) for title, f in drawn]), output)
    if plots_dir is not None:
        _write_plots(drawn, plots_dir, plot_format)
    say(f"wrote {output} ({len(comparison.rows)} rows, {len(comparison.columns)} columns, "
               f"{len(drawn)} plots)", err=True)  # fmt: skip


def _write_plots(drawn: list[tuple[str, Any]], directory: Path, plot_format: str) -> None:
    from benchd.comparison import plots

    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path in plots.save(drawn, directory, plot_format):
            say(f"wrote {path}", err=True)
    except OSError as exc:
        fail(f"--plots-dir {directory}: {exc.strerror or exc}")
