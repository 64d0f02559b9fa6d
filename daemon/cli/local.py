"""The commands that work on this host without a daemon: workloads, run, data, serve, doctor, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from benchd.catalog import NAMES_TEXT
from benchd.cli.app import (
    EXIT_FAILED_RUN,
    DataDirOption,
    JsonOption,
    TimingOption,
    app,
    config_app,
    data_app,
    fail,
    interrupt_on_termination,
    resolve_data_dir,
)


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
    workload: Annotated[str, typer.Argument(help=f"One of: {NAMES_TEXT}.")],
    preset: Annotated[
        list[str] | None,
        typer.Option("--preset", "-p", help="Preset to run (repeatable, or `all`). Default: all."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs per run.")] = 1,
    fraction: Annotated[float, typer.Option(help="Fraction of each epoch to run, in (0, 1].")] = 1.0,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    emsize: Annotated[int | None, typer.Option(help="Transformer: embedding size.")] = None,
    nlayers: Annotated[int | None, typer.Option(help="Transformer: encoder layers.")] = None,
    nhid: Annotated[int | None, typer.Option(help="Transformer: feed-forward width.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="DataLoader worker processes. Default: as the published run on this device."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and synthetic pairs.")] = 1,
    timing: TimingOption = "reference",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps or xpu.")] = "auto",
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before a run is stopped as `timeout`.")
    ] = None,
    telemetry: Annotated[
        bool, typer.Option(help="Sample temperature, power and energy during the runs.")
    ] = True,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run WORKLOAD's presets in the foreground, print the results table and store the runs."""
    from benchd import catalog, devices
    from benchd.catalog import request as request_model
    from benchd.cli import report
    from benchd.cli.progress import RunProgress, prepare_dataset
    from benchd.lifecycle.recording import RunRequest, execute, queue_run
    from benchd.paths import store_path
    from benchd.results.model import Outcome
    from benchd.results.store import ResultsStore, StoreError
    from benchd.telemetry.sampler import Sampler
    from benchd.workloads.datasets.layout import DatasetError

    options = {
        "workload": workload, "presets": preset or "all", "device": device, "epochs": epochs,
        "fraction": fraction, "batch_size": batch_size, "emsize": emsize, "nlayers": nlayers, "nhid": nhid,
        "workers": workers, "seed": seed, "timing": timing, "timeout": timeout,
    }  # fmt: skip
    try:
        fields = request_model.parse({k: v for k, v in options.items() if v is not None})
        configs = fields.configs()
    except catalog.CatalogError as exc:
        fail(str(exc))
    spec = catalog.get_workload(workload)
    directory = resolve_data_dir(data_dir)
    try:
        store = ResultsStore(store_path(directory))
    except StoreError as exc:
        fail(str(exc))
    try:
        resolved = devices.probe().resolve(device)
    except devices.DeviceError as exc:
        fail(str(exc))
    except devices.ProbeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED_RUN) from None
    try:
        prepare_dataset(directory, spec.dataset)  # in the foreground, with a bar, before any run
    except DatasetError as exc:
        fail(str(exc))

    run_ids = []
    interrupt_on_termination()
    sampler = Sampler().start() if telemetry else None
    try:
        for config in configs:
            request = RunRequest(config, resolved, directory, timeout)
            run_id = queue_run(store, request)
            run_ids.append(run_id)
            with RunProgress(f"{config.workload} {config.preset}", config.epochs) as progress:
                execute(store, run_id, request, on_event=progress.on_event, sampler=sampler)
    except KeyboardInterrupt:
        typer.echo("interrupted: the run in progress was recorded as cancelled", err=True)
        raise typer.Exit(130) from None
    finally:
        if sampler is not None:
            sampler.stop()
    runs = [r for r in (store.get_run(i) for i in run_ids) if r is not None]
    if json_output:
        typer.echo(json.dumps([r.to_json() for r in runs], indent=2))
    else:
        report.print_table(report.runs_table(runs))
    if any(r.outcome != Outcome.OK for r in runs):
        raise typer.Exit(EXIT_FAILED_RUN)


@data_app.command("prepare")
def data_prepare(
    datasets: Annotated[
        list[str] | None,
        typer.Argument(help="lsun-classroom, mnist, wikitext-2 or all (default: all)."),
    ] = None,
    scale: Annotated[
        float, typer.Option(help="Size of a synthetic set relative to the real one, in (0, 1].")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generators.")] = 0,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Generate any missing dataset as a synthetic set in the real on-disk format."""
    from benchd.cli.progress import prepare_dataset
    from benchd.workloads.datasets.layout import DatasetError

    names = _dataset_names(datasets)
    if not 0.0 < scale <= 1.0:
        fail(f"scale must be in (0, 1], got {scale}")
    directory = resolve_data_dir(data_dir)
    infos = []
    for name in names:
        try:
            infos.append(prepare_dataset(directory, name, scale=scale, seed=seed))
        except DatasetError as exc:
            fail(str(exc))
    if json_output:
        typer.echo(json.dumps([i.to_json() for i in infos], indent=2))
    else:
        for info in infos:
            typer.echo(f"{info.name}: {info.kind}, {info.samples:,} samples, {info.path}")


DatasetArgument = Annotated[
    list[str] | None, typer.Argument(help="lsun-classroom, mnist, wikitext-2 or all (default: all).")
]


def _dataset_names(datasets: list[str] | None) -> list[str]:
    from benchd.workloads.datasets.formats import NAMES

    names = list(NAMES) if not datasets or "all" in datasets else list(dict.fromkeys(datasets))
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        fail(f"unknown dataset {unknown[0]!r}; valid datasets: {', '.join(NAMES)}, all")
    return names


def _print_verifications(results: list, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
        return
    for result in results:
        state = "ok" if result.ok else "FAILED"
        counts = ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
        size = f"{result.size_bytes / 1e6:,.1f} MB"
        typer.echo(f"{result.name}: {result.kind}, {state}, {counts or '-'}, {size}, {result.path}")
        for problem in result.problems:
            typer.echo(f"  {problem}")


@data_app.command("fetch")
def data_fetch(
    datasets: DatasetArgument = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Mirror base URL (the file name is appended). One dataset only."),
    ] = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Download the real datasets from their public sources, verify them, and put them in place."""
    from rich.progress import TaskID

    from benchd.cli.progress import progress_bars
    from benchd.workloads.datasets.fetch import FetchError, fetch

    names = _dataset_names(datasets)
    if url is not None and len(names) != 1:
        fail("--url applies to one dataset at a time")
    directory = resolve_data_dir(data_dir)
    results = []
    with progress_bars() as bars:
        tasks: dict[str, TaskID] = {}

        def progress(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(f"downloading {name}", total=total)
            bars.update(tasks[name], completed=done, total=total)

        for name in names:
            try:
                results.append(fetch(directory, name, mirror=url, progress=progress))
            except FetchError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(EXIT_FAILED_RUN) from None
    _print_verifications(results, json_output)


@data_app.command("import")
def data_import(
    dataset: Annotated[str, typer.Argument(help="lsun-classroom, mnist or wikitext-2.")],
    path: Annotated[
        Path, typer.Argument(help="The files you have: a directory, or a zip for text and LSUN.")
    ],
    symlink: Annotated[bool, typer.Option("--symlink", help="Link to PATH instead of copying it.")] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Use dataset files you already have, verified like a download."""
    from benchd.workloads.datasets.fetch import FetchError, import_dataset

    if dataset == "all":
        fail("import one dataset at a time")
    (name,) = _dataset_names([dataset])
    directory = resolve_data_dir(data_dir)
    try:
        result = import_dataset(directory, name, path, symlink=symlink)
    except FetchError as exc:
        fail(str(exc))
    _print_verifications([result], json_output)


@data_app.command("verify")
def data_verify(
    datasets: DatasetArgument = None, data_dir: DataDirOption = None, json_output: JsonOption = False
) -> None:
    """Check datasets thoroughly: counts, headers, decodable images; exit 1 if one fails."""
    from benchd.workloads.datasets.verify import verify

    directory = resolve_data_dir(data_dir)
    results = [verify(directory, name) for name in _dataset_names(datasets)]
    _print_verifications(results, json_output)
    if any(not r.ok and r.kind != "absent" for r in results):
        raise typer.Exit(EXIT_FAILED_RUN)


@data_app.command("status")
def data_status(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Which datasets are present, real or synthetic, and their size on disk (cheap checks only)."""
    from benchd.workloads.datasets import layout
    from benchd.workloads.datasets.formats import NAMES, get_format
    from benchd.workloads.datasets.verify import size_on_disk

    directory = resolve_data_dir(data_dir)
    rows: list[dict[str, Any]] = []
    for name in NAMES:
        fmt = get_format(name)
        path = layout.dataset_path(directory, fmt)
        row: dict[str, Any] = {"name": name, "path": str(path), "linked": path.is_symlink()}
        try:
            info = layout.describe(directory, fmt)
            row.update(kind=info.kind if info else "absent", samples=info.samples if info else None)
        except layout.DatasetError as exc:
            row.update(kind="invalid", samples=None, problem=str(exc))
        row["size_bytes"] = size_on_disk(path) if path.exists() else 0
        rows.append(row)
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        samples = f"{row['samples']:,} samples" if row["samples"] else row.get("problem", "-")
        typer.echo(
            f"{row['name']}: {row['kind']}, {samples}, {int(row['size_bytes']) / 1e6:,.1f} MB, {row['path']}"
        )


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file. Default: BENCHD_CONFIG, else embedded defaults."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 9655).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the daemon: scheduled and triggered benchmarks, HTTP API and /metrics."""
    import logging
    import os

    from benchd.paths import DataDirError
    from benchd.results.store import StoreError
    from benchd.server.config import ConfigError, load_settings

    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    flags = {"server.host": host, "server.port": port, "data_dir": str(data_dir) if data_dir else None}
    try:
        settings = load_settings(config, flags)
    except ConfigError as exc:
        fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from benchd.server.daemon import DaemonLockError
    from benchd.server.daemon import serve as run_server

    try:
        code = run_server(settings)
    except (DataDirError, StoreError, DaemonLockError) as exc:
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
            typer.echo(line)
    if not report["can_run"]:
        raise typer.Exit(EXIT_FAILED_RUN)


@config_app.command("example")
def config_example() -> None:
    """Print a commented example configuration file."""
    from benchd.server.config import EXAMPLE

    typer.echo(EXAMPLE, nl=False)
