"""`benchd data`: prepare synthetic sets, fetch, import, verify and list the datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from benchd.cli.app import EXIT_FAILED_RUN, DataDirOption, JsonOption, data_app, fail, resolve_data_dir, say
from benchd.cli.progress import progress_bars
from benchd.datasets.formats import names

_DATASETS = ", ".join(names())  # for help texts: every dataset a registered workload trains on


def prepare_dataset(data_dir: Path, name: str, scale: float = 1.0, seed: int = 0):
    """Find the dataset or generate it, with a bar while generating."""
    from benchd.datasets import layout
    from benchd.datasets.formats import get_format

    fmt = get_format(name)
    existing = layout.describe(data_dir, fmt)
    if existing is not None:
        return existing
    with progress_bars() as bar:
        task = bar.add_task(f"generating synthetic {name}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return layout.ensure(data_dir, fmt, scale=scale, seed=seed, progress=advance)


@data_app.command("prepare")
def data_prepare(
    datasets: Annotated[
        list[str] | None,
        typer.Argument(help=f"{_DATASETS} or all (default: all)."),
    ] = None,
    scale: Annotated[
        float, typer.Option(help="Size of a synthetic set relative to the real one, in (0, 1].")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generators.")] = 0,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Generate any missing dataset as a synthetic set in the real on-disk format."""
    from benchd.datasets.layout import DatasetError

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
            say(f"{info.name}: {info.kind}, {info.samples:,} samples, {info.path}")


DatasetArgument = Annotated[list[str] | None, typer.Argument(help=f"{_DATASETS} or all (default: all).")]


def _dataset_names(datasets: list[str] | None) -> list[str]:
    known = names()
    chosen = list(known) if not datasets or "all" in datasets else list(dict.fromkeys(datasets))
    unknown = [n for n in chosen if n not in known]
    if unknown:
        fail(f"unknown dataset {unknown[0]!r}; valid datasets: {', '.join(known)}, all")
    return chosen


def _print_verifications(results: list, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
        return
    for result in results:
        state = "ok" if result.ok else "FAILED"
        counts = ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
        size = f"{result.size_bytes / 1e6:,.1f} MB"
        say(f"{result.name}: {result.kind}, {state}, {counts or '-'}, {size}, {result.path}")
        for problem in result.problems:
            say(f"  {problem}")


@data_app.command("fetch")
def data_fetch(
    datasets: DatasetArgument = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Mirror base URL (the file name is appended). One dataset only."),
    ] = None,
    missing: Annotated[
        bool,
        typer.Option("--missing", help="Keep a real dataset already in place: fetch only what is missing."),
    ] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Download the real datasets from their public sources, verify them, and put them in place."""
    from rich.progress import TaskID

    from benchd.datasets.fetch import FetchError, fetch

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
                result = fetch(directory, name, mirror=url, progress=progress, missing_only=missing)
            except FetchError as exc:
                say(f"error: {exc}", err=True)
                raise typer.Exit(EXIT_FAILED_RUN) from None
            if result is None:
                say(f"{name}: the real dataset is already in place", err=True)
            else:
                results.append(result)
    _print_verifications(results, json_output)


@data_app.command("import")
def data_import(
    dataset: Annotated[str, typer.Argument(help=f"One of: {_DATASETS}.")],
    path: Annotated[
        Path, typer.Argument(help="The files you have: a directory, or a zip for text and LSUN.")
    ],
    symlink: Annotated[bool, typer.Option("--symlink", help="Link to PATH instead of copying it.")] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Use dataset files you already have, verified like a download."""
    from benchd.datasets.fetch import FetchError, import_dataset

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
    from benchd.datasets.verify import verify

    directory = resolve_data_dir(data_dir)
    results = [verify(directory, name) for name in _dataset_names(datasets)]
    _print_verifications(results, json_output)
    if any(not r.ok and r.kind != "absent" for r in results):
        raise typer.Exit(EXIT_FAILED_RUN)


@data_app.command("status")
def data_status(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Which datasets are present, real or synthetic, and their size on disk (cheap checks only)."""
    from benchd.datasets import layout
    from benchd.datasets.formats import get_format
    from benchd.datasets.verify import size_on_disk

    directory = resolve_data_dir(data_dir)
    rows: list[dict[str, Any]] = []
    for name in names():
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
        say(f"{row['name']}: {row['kind']}, {samples}, {int(row['size_bytes']) / 1e6:,.1f} MB, {row['path']}")
