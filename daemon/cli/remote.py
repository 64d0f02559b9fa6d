"""CLI commands that talk to a running daemon over its HTTP API.

A daemon that is not there is one line naming the URL (exit 1), never a
traceback; an API error prints the daemon's message.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

import typer

from benchd.catalog import NAMES_TEXT
from benchd.cli.app import EXIT_BAD_INPUT, EXIT_FAILED_RUN, JsonOption, app
from benchd.cli.client import ClientError, DaemonClient
from benchd.results.model import Outcome

POLL_SECONDS = 0.5

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Daemon URL. Default: BENCHD_URL or http://127.0.0.1:9655.", show_default=False
    ),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="Bearer token. Default: BENCHD_TOKEN.", show_default=False)
]


def _call(client: DaemonClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return client.request(method, path, body)
    except ClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        bad_input = exc.status is not None and 400 <= exc.status < 500 and exc.status not in (404, 409, 429)
        raise typer.Exit(EXIT_BAD_INPUT if bad_input else EXIT_FAILED_RUN) from None


def _print_runs(runs: list[dict[str, Any]], json_output: bool) -> None:
    from benchd.cli import report
    from benchd.results.model import Run

    if json_output:
        typer.echo(json.dumps(runs, indent=2))
    else:
        report.print_table(report.runs_table([Run.from_json(r) for r in runs]))


@app.command()
def trigger(
    workload: Annotated[str, typer.Argument(help=f"One of: {NAMES_TEXT}.")],
    preset: Annotated[
        list[str] | None, typer.Option("--preset", "-p", help="Preset (repeatable, or `all`). Default: all.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps or xpu.")] = "auto",
    epochs: Annotated[int | None, typer.Option(help="Epochs per run.")] = None,
    fraction: Annotated[float | None, typer.Option(help="Fraction of each epoch, in (0, 1].")] = None,
    timing: Annotated[
        str | None, typer.Option(help="reference (the default) or device; see docs/workloads.md.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the runs and print their results.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Ask the running daemon to run WORKLOAD now; with --wait, exit 0 only if every run was ok."""
    client = DaemonClient(url, token)
    body: dict[str, Any] = {"workload": workload, "presets": preset or "all", "device": device}
    if epochs is not None:
        body["epochs"] = epochs
    if fraction is not None:
        body["fraction"] = fraction
    if timing is not None:
        body["timing"] = timing
    queued = _call(client, "POST", "/api/v1/runs", body)["runs"]
    if not wait:
        if json_output:
            typer.echo(json.dumps(queued, indent=2))
        for run in queued:
            note = " (already queued)" if run["duplicate"] else ""
            typer.echo(
                f"queued run {run['id']}: {run['workload']} {run['preset']} on {run['device']}{note}",
                err=True,
            )
        return
    runs = _follow(client, [r["id"] for r in queued])
    _print_runs(runs, json_output)
    if any(r["outcome"] != Outcome.OK for r in runs):
        raise typer.Exit(EXIT_FAILED_RUN)


def _follow(client: DaemonClient, run_ids: list[int]) -> list[dict[str, Any]]:
    """Poll the daemon until every run has finished, with a bar per run on stderr."""
    from benchd.cli.progress import progress_bars

    finished: dict[int, dict[str, Any]] = {}
    pause = threading.Event()
    with progress_bars() as bars:
        tasks = {run_id: bars.add_task(f"run {run_id}: queued", total=None) for run_id in run_ids}
        while len(finished) < len(run_ids):
            for run_id in run_ids:
                if run_id in finished:
                    continue
                run = _call(client, "GET", f"/api/v1/runs/{run_id}")
                label = f"run {run_id} {run['workload']} {run['preset']}"
                progress = run.get("progress")
                if run["state"] == "finished":
                    finished[run_id] = run
                    bars.update(tasks[run_id], description=f"{label}: {run['outcome']}", total=1, completed=1)
                elif progress and progress.get("epoch") is not None:
                    epoch = f"epoch {progress['epoch'] + 1}/{progress['epochs']}"
                    bars.update(tasks[run_id], description=f"{label}: {epoch}", total=progress["steps"],
                                completed=progress["step"])  # fmt: skip
                else:
                    bars.update(tasks[run_id], description=f"{label}: {run['state']}")
            if len(finished) < len(run_ids):
                pause.wait(POLL_SECONDS)
    return [finished[i] for i in run_ids]


@app.command()
def runs(
    workload: Annotated[str | None, typer.Option(help="Only this workload.")] = None,
    outcome: Annotated[str | None, typer.Option(help="Only runs with this outcome.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 20,
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the daemon's runs, newest first."""
    from urllib.parse import urlencode

    query = urlencode(
        {k: v for k, v in {"workload": workload, "outcome": outcome, "limit": limit}.items() if v}
    )
    _print_runs(_call(DaemonClient(url), "GET", f"/api/v1/runs?{query}")["runs"], json_output)


@app.command()
def show(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one run with its epochs: where each epoch's time went, by phase."""
    from benchd.cli import report

    run = _call(DaemonClient(url), "GET", f"/api/v1/runs/{run_id}")
    if json_output:
        typer.echo(json.dumps(run, indent=2))
        return
    _print_runs([run], False)
    typer.echo(f"  config {run.get('config_id') or '-'}; {report.system_line(run.get('system'))}")
    for epoch in run["epochs"]:
        typer.echo(f"  epoch {epoch['index']}: {report.epoch_line(epoch)}")
    if run.get("message"):
        typer.echo(f"  message: {run['message']}")


@app.command()
def cancel(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a queued or running run."""
    answer = _call(DaemonClient(url, token), "DELETE", f"/api/v1/runs/{run_id}")
    typer.echo(f"run {run_id}: {answer['state']}")


@app.command()
def status(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Daemon health, devices, queue, the run in progress and the last results."""
    answer = _call(DaemonClient(url), "GET", "/api/v1/status")
    if json_output:
        typer.echo(json.dumps(answer, indent=2))
        return
    state = "ready" if answer["ready"] else f"not ready ({answer['not_ready_reason']})"
    typer.echo(
        f"benchd {answer['version']} (pid {answer['pid']}): {state}, up {answer['uptime_seconds']:.0f} s"
    )
    for device in answer["devices"]:
        typer.echo(f"  device {device['id']}: {device['name']}")
    for active in answer["active"]:
        typer.echo(
            f"  running: run {active['id']} {active['workload']} {active['preset']} on {active['device']}"
        )
    typer.echo(f"  queue: {len(answer['queue'])} run(s) waiting")
    for last in answer["last"]:
        seconds = f"{last['epoch_seconds']:.3f} s/epoch" if last["epoch_seconds"] is not None else "-"
        typer.echo(
            f"  last {last['workload']} {last['preset']} on {last['device']}: {last['outcome']}, {seconds}"
        )
