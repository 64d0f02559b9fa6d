"""`benchd health` (each device's verdict, as node-problem-detector and Slurm read it) and `benchd bands`.

The exit code is node-problem-detector's custom-plugin convention: 0 OK
(every device healthy), 1 NonOK (a device degraded, failing or corrupt), 2 Unknown
(no verdict to give: no runs, no band, no daemon answering, bad input).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from benchd.cli.app import EXIT_BAD_INPUT, ConfigFileOption, DataDirOption, JsonOption, app, fail, say
from benchd.cli.remote import UrlOption
from benchd.health.verdict import SEVERITY, BandSource, Health

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_UNKNOWN = 0, 1, EXIT_BAD_INPUT

bands_app = typer.Typer(
    help="Reference bands: shipped with benchd, or added from your bundles.", invoke_without_command=True
)
app.add_typer(bands_app, name="bands")


class HealthFormat(str, Enum):
    TEXT = "text"
    NPD = "npd"  # one line of at most 80 characters: node-problem-detector's condition message
    JSON = "json"


@app.command()
def health(
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    config: ConfigFileOption = None,
    output_format: Annotated[
        HealthFormat,
        typer.Option("--format", help="text; npd (one line of at most 80 characters); json."),
    ] = HealthFormat.TEXT,
    band: Annotated[
        list[BandSource] | None,
        typer.Option("--band", help="Judge against these bands only, first present first (repeat it)."),
    ] = None,
    fleet: Annotated[
        list[Path] | None,
        typer.Option(
            "--fleet",
            help="Bundles of other hosts: the fleet band of each device model and config, and their "
            "deterministic fingerprints (repeat it).",
        ),
    ] = None,
    prometheus: Annotated[
        str | None,
        typer.Option("--prometheus", help="The fleet's bands and fingerprints from this Prometheus instead."),
    ] = None,
    configs: Annotated[bool, typer.Option("--configs", help="Every config's verdict too.")] = False,
) -> None:
    """Each device's verdict: healthy, degraded, failing, corrupt or unknown, with why. Exit 0 when every
    device is healthy, 1 when one is degraded, failing or corrupt, 2 when it cannot tell. Reads the daemon
    with --url, else the local store (judged with the config's [health] settings)."""
    if url is not None:
        if band or fleet or prometheus:
            _unknown("--band, --fleet and --prometheus judge the local store, not a daemon", output_format)
        devices = _from_daemon(url, output_format)
    else:
        devices = _from_store(data_dir, config, band, fleet, prometheus, output_format)
    _print(devices, output_format, configs)
    raise typer.Exit(exit_code(devices))


def exit_code(devices: list[dict[str, Any]]) -> int:
    states = {Health(device["state"]) for device in devices}
    if states & {Health.DEGRADED, Health.FAILING, Health.CORRUPT}:
        return EXIT_UNHEALTHY
    return EXIT_HEALTHY if states == {Health.HEALTHY} else EXIT_UNKNOWN


def _unknown(message: str, output_format: HealthFormat) -> NoReturn:
    """Why there is no verdict, as the plugin convention wants it: on stdout for npd, exit 2."""
    if output_format == HealthFormat.NPD:
        say(f"unknown: {message}"[:80])
        raise typer.Exit(EXIT_UNKNOWN)
    fail(message)


def _from_daemon(url: str, output_format: HealthFormat) -> list[dict[str, Any]]:
    from benchd.cli.client import ClientError, DaemonClient

    try:
        return list(DaemonClient(url).request("GET", "/api/v1/health")["devices"])
    except ClientError as exc:
        _unknown(str(exc), output_format)


def _from_store(data_dir: Path | None, config: Path | None, band: list[BandSource] | None,
                fleet: list[Path] | None, prometheus: str | None,
                output_format: HealthFormat) -> list[dict[str, Any]]:  # fmt: skip
    from benchd.health import bands
    from benchd.health.book import HealthBook
    from benchd.paths import store_path
    from benchd.results.store import ResultsStore, StoreError
    from benchd.settings import ConfigError, load_settings

    try:
        settings = load_settings(config, {"data_dir": str(data_dir) if data_dir else None})
    except ConfigError as exc:
        _unknown(str(exc), output_format)
    policy = settings.health.policy()
    if band:
        policy = dataclasses.replace(policy, bands=tuple(dict.fromkeys(band)))
    try:
        external = {BandSource.REFERENCE: bands.references(settings.data_dir)}
    except bands.BandsError as exc:
        _unknown(str(exc), output_format)
    votes: list[Any] = []
    if fleet or prometheus:
        results, votes = _fleet(fleet, prometheus)
        external[BandSource.FLEET] = bands.fleet(results)
    path = store_path(settings.data_dir)
    if not path.is_file():
        _unknown(f"no results store at {path} (--data-dir)", output_format)
    try:
        store = ResultsStore(path, read_only=True)
        try:
            runs = store.finished_runs()
        finally:
            store.close()
    except StoreError as exc:
        _unknown(str(exc), output_format)
    book = HealthBook(policy, external, votes)
    for run in sorted(runs, key=lambda r: (r.finished_at or r.queued_at, r.id)):
        book.record(run)
    now = datetime.now()
    periods = {(s.workload, p): s.period_seconds(now) for s in settings.schedules for p in s.presets}
    return [verdict.to_json() for verdict in book.verdicts(time.time(), periods)]


def _fleet(fleet: list[Path] | None, prometheus: str | None) -> tuple[list[Any], list[Any]]:
    """The other hosts' results (for fleet bands) and deterministic fingerprints (for corrupt verdicts)."""
    from benchd.comparison.prometheus import PrometheusError
    from benchd.comparison.prometheus import results as prometheus_results
    from benchd.comparison.results import from_bundle
    from benchd.health.fingerprints import bundle_votes, prometheus_votes
    from benchd.results.bundle import BundleError, read_bundle

    try:
        if prometheus is not None:
            return prometheus_results(prometheus), prometheus_votes(prometheus)
        bundles = [read_bundle(path) for path in fleet or []]
        results = [result for bundle in bundles for result in from_bundle(bundle)]
        return results, [vote for b in bundles for vote in bundle_votes(b.runs, b.hostname)]
    except (BundleError, PrometheusError) as exc:
        fail(str(exc))


def _print(devices: list[dict[str, Any]], output_format: HealthFormat, configs: bool) -> None:
    if output_format == HealthFormat.JSON:
        typer.echo(json.dumps({"devices": devices}, indent=2))
    elif output_format == HealthFormat.NPD:
        worst = max(devices, key=lambda d: SEVERITY[Health(d["state"])], default=None)
        say(worst["brief"] if worst is not None else "unknown: no device has a counted run yet")
    elif not devices:
        say("unknown: no device has a counted run yet")
    for device in devices if output_format == HealthFormat.TEXT else []:
        say(f"{device['device']} {device['state']}: {device['reason']}")
        for verdict in device["configs"] if configs else []:
            say(f"  {verdict['state']}: {verdict['reason']}")


@bands_app.callback()
def bands_list(ctx: typer.Context, data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """List the reference bands: shipped with benchd, then those added from bundles (added ones win)."""
    if ctx.invoked_subcommand is not None:
        return
    from benchd.cli.app import resolve_data_dir
    from benchd.health import bands

    try:
        found = [*bands.shipped(), *bands.added(resolve_data_dir(data_dir))]
    except bands.BandsError as exc:
        fail(str(exc))
    if json_output:
        typer.echo(json.dumps([band.to_json() for band in found], indent=2))
        return
    for band in found:
        say(f"{band.device_name}: {band.workload} {band.preset} {band.timing} ({band.config}) "
            f"{band.median_seconds:.3f} s, "
            f"spread {band.spread:.1%} over {band.runs} run{'s' if band.runs != 1 else ''}; {band.machine}, "
            f"{band.software}, {band.measured} [{band.origin}]")  # fmt: skip


@bands_app.command("add")
def bands_add(
    bundles: Annotated[list[Path], typer.Argument(help="Bundles from `benchd export`.")],
    data_dir: DataDirOption = None,
) -> None:
    """Add a band per device model and config from each bundle's ok, uncontended runs (their median and
    spread), kept in the data directory's bands.json; a band of the same device model and config is
    replaced."""
    from benchd.cli.app import resolve_data_dir
    from benchd.comparison.results import from_bundle
    from benchd.health import bands
    from benchd.results.bundle import BundleError, read_bundle

    directory = resolve_data_dir(data_dir)
    new = []
    try:
        for path in bundles:
            found = bands.from_results(from_bundle(read_bundle(path)), path.name)
            if not found:
                fail(f"{path}: no ok, uncontended run with a config id to make a band of")
            new += found
        bands.add(directory, new)
    except (BundleError, bands.BandsError, OSError) as exc:
        fail(str(exc))
    for band in new:
        say(f"added {band.device_name}: {band.workload} {band.preset} ({band.config}) "
            f"{band.median_seconds:.3f} s over {band.runs} runs")  # fmt: skip
