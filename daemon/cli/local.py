"""The commands that work on this host without a daemon: workloads, run, data, serve, doctor, config."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from benchd.catalog import names_text
from benchd.cli.app import (
    EXIT_FAILED_RUN,
    ChannelsLastOption,
    CompileOption,
    ConfigFileOption,
    DataDirOption,
    DeterministicOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    SuiteOption,
    TimingOption,
    WideOption,
    app,
    config_app,
    fail,
    interrupt_on_termination,
    model_options,
    resolve_data_dir,
    say,
)
from benchd.cli.gate import EXIT_SLOWER, MaxSlowdownOption, parse_limit, slower_than_baseline

if TYPE_CHECKING:
    from benchd.catalog import RunConfig
    from benchd.lifecycle.recording import RunRequest
    from benchd.results.baseline import Repeats
    from benchd.results.model import Origin, Run
    from benchd.results.store import ResultsStore


@app.command()
def workloads(json_output: JsonOption = False) -> None:
    """List the workloads and their presets with parameter counts."""
    from benchd import catalog
    from benchd.cli import report

    if json_output:
        typer.echo(json.dumps(catalog.listing(), indent=2))
    else:
        report.print_table(report.workloads_table())


@app.command()
def run(
    workload: Annotated[
        str | None,
        typer.Argument(help=f"One of: {names_text()}. Left out with --suite: every workload the suite runs."),
    ] = None,
    preset: Annotated[
        list[str] | None,
        typer.Option("--preset", "-p", help="Preset to run (repeatable, or `all`). Default: all."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs per run. Default: 1.", show_default=False)
    ] = None,
    fraction: Annotated[
        float | None,
        typer.Option(help="Fraction of each epoch to run, in (0, 1]. Default: 1.", show_default=False),
    ] = None,
    suite: SuiteOption = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    option: ModelOption = None,
    workers: Annotated[
        int | None,
        typer.Option(help="DataLoader worker processes. Default: as the published run on this device."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and synthetic pairs.")] = 1,
    timing: TimingOption = "reference",
    precision: PrecisionOption = None,
    compile_model: CompileOption = False,
    channels_last: ChannelsLastOption = False,
    deterministic: DeterministicOption = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps or xpu.")] = "auto",
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before a run is stopped as `timeout`.")
    ] = None,
    telemetry: Annotated[
        bool, typer.Option(help="Sample temperature, power and energy during the runs.")
    ] = True,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
    wide: WideOption = False,
    max_slowdown: MaxSlowdownOption = None,
    repeat: Annotated[
        int,
        typer.Option(
            help="Run each config this many times, each in a fresh child; report the spread.", min=1, max=100
        ),
    ] = 1,
    yield_to_tenants: Annotated[
        bool,
        typer.Option(
            "--yield-to-tenants",
            help="Stop a run (outcome preempted) when another process starts using its device: a GPU compute "
            "process, or CPU use above 25% for two seconds. Off here, where you chose to run; on in serve.",
        ),
    ] = False,
) -> None:
    """Run WORKLOAD's presets (or a suite's workloads) in the foreground, print the results table and store
    the runs."""
    from benchd import catalog
    from benchd.catalog import request as request_model
    from benchd.catalog import suites
    from benchd.lifecycle.recording import RunRequest

    options = {
        "suite": suite, "presets": preset, "device": device, "epochs": epochs,
        "fraction": fraction, "batch_size": batch_size, "options": model_options(option),
        "workers": workers, "seed": seed, "timing": timing, "timeout": timeout, "precision": precision,
        "compile": compile_model or None, "channels_last": channels_last or None,
        "deterministic": deterministic or None,
    }  # fmt: skip
    limit = parse_limit(max_slowdown)
    if workload is None and suite is None:
        fail("name a workload, or a suite (--suite) to run every workload it runs")
    try:
        chosen = [workload] if workload is not None else list(suites.members(str(suite)))
        configs = [
            config
            for name in chosen
            for config in request_model.parse(
                {"workload": name, **{k: v for k, v in options.items() if v is not None}}
            ).configs()
        ]
    except catalog.CatalogError as exc:
        fail(str(exc))
    directory = resolve_data_dir(data_dir)
    store, resolved = foreground_setup(directory, device, configs)
    requests = [RunRequest(config, resolved, directory, timeout, yield_to_tenants=yield_to_tenants)
                for config in configs for _ in range(repeat)]  # fmt: skip
    runs = run_in_foreground(store, requests, telemetry)
    _report(store, runs, json_output, wide, limit)


def foreground_setup(directory: Path, device: str, configs: list[RunConfig]) -> tuple[ResultsStore, str]:
    """The store (a `benchd run` killed before it finished marked as such), the device resolved, and every
    dataset the configs need, prepared in the foreground with a bar before any run."""
    from benchd import catalog, devices
    from benchd.cli.data import prepare_dataset
    from benchd.datasets.layout import DatasetError
    from benchd.lifecycle.ledger import RunLedger
    from benchd.lifecycle.queue import interrupt_abandoned
    from benchd.paths import store_path
    from benchd.results.store import ResultsStore, StoreError

    try:
        store = ResultsStore(store_path(directory))
        interrupt_abandoned(RunLedger(store, lambda _run: None))
    except StoreError as exc:
        fail(str(exc))
    try:
        resolved = devices.probe().resolve(device)
    except devices.DeviceError as exc:
        fail(str(exc))
    except devices.ProbeError as exc:
        say(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED_RUN) from None
    try:
        for dataset in dict.fromkeys(catalog.get_workload(c.workload).dataset for c in configs):
            prepare_dataset(directory, dataset)
    except DatasetError as exc:
        fail(str(exc))
    return store, resolved


def run_in_foreground(
    store: ResultsStore, requests: list[RunRequest], telemetry: bool, origin: Origin | None = None
) -> list[Run]:
    """Each request, one after another, with a progress bar; Ctrl-C records the run in progress as
    cancelled and exits 130."""
    from benchd.cli.progress import RunProgress
    from benchd.lifecycle.recording import execute, queue_run
    from benchd.results.model import Origin
    from benchd.telemetry.sampler import Sampler

    run_ids = []
    interrupt_on_termination()
    sampler = Sampler().start() if telemetry else None
    try:
        for request in requests:
            run_id = queue_run(store, request, origin or Origin.CLI)
            run_ids.append(run_id)
            config = request.config
            with RunProgress(f"{config.workload} {config.preset}", config.epochs) as progress:
                execute(
                    store, run_id, request, on_event=progress.on_event, sampler=sampler,
                    on_wait=functools.partial(_say_waiting, request.device),
                )  # fmt: skip
    except KeyboardInterrupt:
        say("interrupted: the run in progress was recorded as cancelled", err=True)
        raise typer.Exit(130) from None
    finally:
        if sampler is not None:
            sampler.stop()
    return [r for r in (store.get_run(i) for i in run_ids) if r is not None]


def _report(store: ResultsStore, runs: list[Run], json_output: bool, wide: bool, limit: float | None) -> None:
    """The runs as a table or JSON, then the exit status: 1 if one failed, 3 if one was slower than its
    baseline beyond the limit (--max-slowdown), else 0."""
    from benchd.cli import report
    from benchd.results.model import Outcome

    repeats = repeated(runs)
    if json_output:
        typer.echo(
            json.dumps([_with_repeats(r.to_json(), repeats.get(_repeat_key(r))) for r in runs], indent=2)
        )
    else:
        report.print_table(report.runs_table(runs, wide=wide))
    for (workload, preset, config), found in repeats.items():
        say(f"repeats: {workload} {preset} ({config}): {found.line()}", err=True)
    if any(r.outcome != Outcome.OK for r in runs):
        raise typer.Exit(EXIT_FAILED_RUN)
    if limit is not None and slower_than_baseline(runs, functools.partial(_history, store), limit):
        raise typer.Exit(EXIT_SLOWER)


def _repeat_key(run: Run) -> tuple[str, str, str]:
    return (run.workload, run.preset, run.config_id or "-")


def repeated(runs: list[Run]) -> dict[tuple[str, str, str], Repeats]:
    """Each config run several times (--repeat): the median, interquartile range and variation of its ok
    runs' representative epochs."""
    from benchd.results.baseline import repeats_of

    by_config: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        if run.summary is not None and run.outcome == "ok":
            by_config.setdefault(_repeat_key(run), []).append(run.summary.epoch_seconds)
    found = {key: repeats_of(seconds) for key, seconds in by_config.items()}
    return {key: value for key, value in found.items() if value is not None and value.runs > 1}


def _with_repeats(run: dict[str, Any], repeats: Repeats | None) -> dict[str, Any]:
    """A run's JSON, with its config's spread over the command's repeats (`--repeat`), as stderr says it."""
    if repeats is None:
        return run
    return {**run, "repeats": repeats.to_json()}


def _history(store: ResultsStore, run: Run) -> list[float]:
    from benchd.results.baseline import BASELINE_RUNS

    return store.config_history(run.config_id or "", run.id, BASELINE_RUNS)


def _say_waiting(device: str, holder: str) -> None:
    say(f"waiting for {device}: in use by {holder}", err=True)


@app.command()
def serve(
    config: ConfigFileOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 9655).")] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="Read the bearer token from this file (server.token_file).")
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A name clients may call the daemon by, besides localhost, IP addresses and this host's "
            "name (server.allowed_hosts; repeat it for several)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the daemon: scheduled and triggered benchmarks, HTTP API and /metrics."""
    import logging
    import os

    from benchd.paths import DataDirError
    from benchd.results.store import StoreError
    from benchd.settings import ConfigError, load_settings

    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    flags = {"server.host": host, "server.port": port, "data_dir": str(data_dir) if data_dir else None,
             "server.token_file": str(token_file) if token_file else None,
             "server.allowed_hosts": allowed_host or None}  # fmt: skip
    try:
        settings = load_settings(config, flags)
    except ConfigError as exc:
        fail(str(exc))
    for warning in settings.warnings:
        say(f"warning: {warning}", err=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from benchd.server.daemon import DaemonLockError, ListenError
    from benchd.server.daemon import serve as run_server

    try:
        code = run_server(settings)
    except (DataDirError, StoreError, DaemonLockError, ListenError) as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def doctor(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Check torch, devices, sensors and datasets; exit 0 when benchd can run at least on the CPU."""
    from benchd.cli.doctor import diagnose, render

    report = diagnose(resolve_data_dir(data_dir))
    if json_output:
        typer.echo(json.dumps(report, indent=2))
    else:
        for line in render(report):
            say(line)
    if not report["can_run"]:
        raise typer.Exit(EXIT_FAILED_RUN)


@config_app.command("example")
def config_example() -> None:
    """Print a commented example configuration file."""
    from benchd.settings.example import example

    typer.echo(example(), nl=False)
