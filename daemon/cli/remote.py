"""CLI commands that talk to a running daemon over its HTTP API.

A daemon that is not there is one line naming the URL (exit 1), never a
traceback; an API error prints the daemon's message.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from benchd.catalog import names_text
from benchd.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_RUN,
    ChannelsLastOption,
    CompileOption,
    DataDirOption,
    DeterministicOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    SuiteOption,
    WideOption,
    app,
    fail,
    model_options,
    say,
    say_wrapped,
)
from benchd.cli.client import ClientError, DaemonClient, UnreachableError, UrlError
from benchd.cli.gate import EXIT_SLOWER, MaxSlowdownOption, parse_limit, slower_than_baseline
from benchd.results.model import MAX_RUN_ID, Outcome

POLL_SECONDS = 0.5
RunIdArgument = Annotated[int, typer.Argument(help="Run id.", min=1, max=MAX_RUN_ID)]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Daemon URL. Default: BENCHD_URL, else http://127.0.0.1 on BENCHD_PORT (9655).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="Bearer token. Default: BENCHD_TOKEN.", show_default=False)
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="Read the bearer token from this file (kept out of `ps`). Default: BENCHD_TOKEN_FILE.",
    ),
]


def client_for(url: str | None, token: str | None = None, token_file: Path | None = None) -> DaemonClient:
    """A client for a command that changes something: with its token, and waiting for a starting daemon."""
    from benchd.cli.client import TokenError, resolve_token

    try:
        return DaemonClient(url, resolve_token(token, token_file), wait_for_start=True)
    except TokenError as exc:
        fail(str(exc))


def call(client: DaemonClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return client.request(method, path, body)
    except ClientError as exc:
        exit_with(exc)


@contextlib.contextmanager
def daemon_answer(client: DaemonClient) -> Iterator[None]:
    """While reading what the daemon sent: an answer of another shape (another program on that port, a
    proxy, another version) is one line and exit 1, never a traceback."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        exit_with(ClientError(f"{client.url} answered JSON of an unexpected shape ({type(exc).__name__}: "
                              f"{str(exc)[:80]}); is it a benchd daemon of this version?"))  # fmt: skip


def exit_with(exc: ClientError) -> NoReturn:
    """The daemon's error as one line; a request it refused as bad input (or a malformed --url) exits 2,
    anything else 1."""
    say(f"error: {exc}", err=True)
    refused = exc.status is not None and 400 <= exc.status < 500 and exc.status not in (404, 409, 429)
    bad_input = refused or isinstance(exc, UrlError)
    raise typer.Exit(EXIT_BAD_INPUT if bad_input else EXIT_FAILED_RUN) from None


def _print_runs(runs: list[dict[str, Any]], json_output: bool, wide: bool = False, title: str = "") -> None:
    from benchd.cli import report
    from benchd.results.model import Run

    if json_output:
        typer.echo(json.dumps(runs, indent=2))
    else:
        table = report.runs_table(
            [Run.from_json(r) for r in runs], wide=wide, title=title or "benchd results"
        )
        report.print_table(table)


def _read(
    client: DaemonClient, path: str, data_dir: Path | None, local: Callable[[Any], Any]
) -> tuple[Any, str]:
    """Ask the daemon; when none answers, read the local store instead. Says which it read, on stderr."""
    from benchd.paths import default_data_dir, store_path
    from benchd.results.store import ResultsStore, StoreError

    try:
        answer = client.request("GET", path)
    except ClientError as exc:
        if not isinstance(exc, UnreachableError):  # something answered, or --url is not an address
            exit_with(exc)
        store = store_path(data_dir if data_dir is not None else default_data_dir())
        if not store.is_file():
            say(f"error: {exc}; and no results store at {store} (--data-dir)", err=True)
            raise typer.Exit(EXIT_FAILED_RUN) from None
        try:
            opened = ResultsStore(store, read_only=True)
        except StoreError as error:
            say(f"error: {error}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        say(f"no daemon at {client.url}: reading the local store {store}", err=True)
        try:
            return local(opened), f"local store {store}"
        finally:
            opened.close()
    return answer, f"daemon at {client.url}"


@app.command()
def trigger(
    workload: Annotated[str, typer.Argument(help=f"One of: {names_text()}.")],
    preset: Annotated[
        list[str] | None, typer.Option("--preset", "-p", help="Preset (repeatable, or `all`). Default: all.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps or xpu.")] = "auto",
    epochs: Annotated[int | None, typer.Option(help="Epochs per run.")] = None,
    fraction: Annotated[float | None, typer.Option(help="Fraction of each epoch, in (0, 1].")] = None,
    suite: SuiteOption = None,
    option: ModelOption = None,
    timing: Annotated[
        str | None, typer.Option(help="reference (the default) or device; see docs/workloads.md.")
    ] = None,
    precision: PrecisionOption = None,
    compile_model: CompileOption = False,
    channels_last: ChannelsLastOption = False,
    deterministic: DeterministicOption = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the runs and print their results.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    json_output: JsonOption = False,
    wide: WideOption = False,
    max_slowdown: MaxSlowdownOption = None,
) -> None:
    """Ask the running daemon to run WORKLOAD now; with --wait, exit 0 only if every run was ok."""
    limit = parse_limit(max_slowdown) if wait else None
    if max_slowdown is not None and not wait:
        fail("--max-slowdown needs --wait: the results are judged when the runs end")
    client = client_for(url, token, token_file)
    body: dict[str, Any] = {"workload": workload, "device": device}
    chosen = {"suite": suite, "presets": preset, "epochs": epochs, "fraction": fraction, "timing": timing,
              "precision": precision, "compile": compile_model, "channels_last": channels_last,
              "deterministic": deterministic, "options": model_options(option)}  # fmt: skip
    body.update({name: value for name, value in chosen.items() if value is not None and value is not False})
    with daemon_answer(client):
        _trigger_answer(client, call(client, "POST", "/api/v1/runs", body), json_output, wide, limit, wait)


def _trigger_answer(client: DaemonClient, answer: Any, json_output: bool, wide: bool, limit: float | None,
                    wait: bool) -> None:  # fmt: skip
    queued = answer["runs"]
    if not wait:
        if json_output:
            typer.echo(json.dumps(queued, indent=2))
        for run in queued:
            note = " (already queued)" if run["duplicate"] else ""
            say(
                f"queued run {run['id']}: {run['workload']} {run['preset']} on {run['device']}{note}",
                err=True,
            )
        return
    runs = _follow(client, [r["id"] for r in queued])
    _print_runs(runs, json_output, wide)
    if any(r["outcome"] != Outcome.OK for r in runs):
        raise typer.Exit(EXIT_FAILED_RUN)
    if limit is not None:
        from benchd.results.model import Run

        history = functools.partial(_history, client)
        if slower_than_baseline([Run.from_json(r) for r in runs], history, limit):
            raise typer.Exit(EXIT_SLOWER)


def _history(client: DaemonClient, run: Any) -> list[float]:
    """The run's config's earlier ok, uncontended representative epochs, oldest first, from the daemon."""
    from benchd.results.baseline import BASELINE_RUNS

    query = f"/api/v1/runs?config={run.config_id}&outcome=ok&limit={2 * BASELINE_RUNS}"
    earlier = [r for r in call(client, "GET", query)["runs"] if r["id"] < run.id and not r.get("contended")]
    return [r["summary"]["epoch_seconds"] for r in reversed(earlier[:BASELINE_RUNS]) if r.get("summary")]


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
                run = call(client, "GET", f"/api/v1/runs/{run_id}")
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
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.", min=1, max=1000)] = 20,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List runs, newest first: the daemon's, or the local store's when no daemon answers."""
    from urllib.parse import urlencode

    query = urlencode(
        {k: v for k, v in {"workload": workload, "outcome": outcome, "limit": limit}.items() if v}
    )
    answer, source = _read(DaemonClient(url), f"/api/v1/runs?{query}", data_dir, lambda store: {
        "runs": [r.to_json() for r in store.list_runs(workload=workload, outcome=outcome, limit=limit)]
    })  # fmt: skip
    with daemon_answer(DaemonClient(url)):
        _print_runs(answer["runs"], json_output, wide, f"benchd results ({source})")


@app.command()
def show(
    run_id: RunIdArgument,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Show one run with its epochs: where each epoch's time went, by phase."""

    def local(store: Any) -> dict[str, Any]:
        run = store.get_run(run_id)
        if run is None:
            say(f"error: no run {run_id} in the local store", err=True)
            raise typer.Exit(EXIT_FAILED_RUN)
        return run.to_json()

    run, source = _read(DaemonClient(url), f"/api/v1/runs/{run_id}", data_dir, local)
    if json_output:
        typer.echo(json.dumps(run, indent=2))
        return
    with daemon_answer(DaemonClient(url)):
        _show_run(run_id, run, source, wide)


def _show_run(run_id: int, run: dict[str, Any], source: str, wide: bool) -> None:
    """One run, a field a line (a one-row table did not fit a narrow terminal), wrapped at its width."""
    from benchd.cli import report
    from benchd.results.model import Run

    say(f"benchd run {run_id} ({source})")
    for line in report.run_lines(Run.from_json(run), wide=wide):
        say_wrapped(f"  {line}")
    if run.get("progress"):
        say_wrapped(f"  progress: {progress_text(run['progress'])}")
    timing = f", {run['timing']} timing" if run.get("timing") else ""
    say_wrapped(f"  config {run.get('config_id') or '-'}{timing}; {report.system_line(run.get('system'))}")
    if run.get("contention"):
        say_wrapped(
            f"  contended: {run['contention']} during its representative epochs; kept out of baselines"
        )
    why = report.slowdown_line((run.get("summary") or {}).get("slowdown") or {})
    if why:
        say_wrapped(f"  why: {why}")
    computed = report.compute_line((run.get("summary") or {}).get("compute") or {})
    if computed:
        say_wrapped(f"  compute: {computed}")
    for epoch in run["epochs"]:
        say_wrapped(f"  epoch {epoch['index']}: {report.epoch_line(epoch)}")
    if run.get("message"):
        say_wrapped(f"  message: {run['message']}")


@app.command()
def cancel(
    run_id: RunIdArgument,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Cancel a queued or running run."""
    client = client_for(url, token, token_file)
    answer = call(client, "DELETE", f"/api/v1/runs/{run_id}")
    with daemon_answer(client):
        say(f"run {run_id}: {answer['state']}")


@app.command()
def status(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Daemon health, devices, queue, the run in progress and the last results."""
    client = DaemonClient(url)
    answer = call(client, "GET", "/api/v1/status")
    if json_output:
        typer.echo(json.dumps(answer, indent=2))
        return
    with daemon_answer(client):
        _print_status(answer)


def _print_status(answer: dict[str, Any]) -> None:
    state = "ready" if answer["ready"] else f"not ready ({answer['not_ready_reason']})"
    say(f"benchd {answer['version']} (pid {answer['pid']}): {state}, up {answer['uptime_seconds']:.0f} s")
    for device in answer["devices"]:
        say(f"  device {device['id']}: {device['name']}")
    for active in answer["active"]:
        what = f"run {active['id']} {active['workload']} {active['preset']} on {active['device']}"
        say_wrapped(f"  running: {what}, {progress_text(active)}")
    say(f"  queue: {len(answer['queue'])} run(s) waiting")
    for schedule, moment in sorted((answer.get("next") or {}).items(), key=lambda item: item[1]):
        say(f"  next: {schedule}{_when(moment)}")
    for last in answer["last"]:
        say_wrapped(f"  {last['workload']} {last['preset']} on {last['device']}: {_last_line(last)}")
    for verdict in answer.get("health") or []:
        say_wrapped(f"  health of {verdict['device']}: {verdict['state']}: {verdict['reason']}")


def progress_text(progress: dict[str, Any]) -> str:
    """Where a running run is, as the daemon knows it: "epoch 2/3, step 120 of 469", or "starting" before
    its first epoch."""
    if progress.get("epoch") is None:
        return "starting"
    steps = f" of {progress['steps']}" if progress.get("steps") else ""
    return f"epoch {progress['epoch'] + 1}/{progress['epochs']}, step {progress['step']}{steps}"


def _last_line(last: dict[str, Any]) -> str:
    """The last outcome and, apart from it, the last clean result: a failure hides neither, and a series
    whose ok runs all met foreign load says so rather than "no ok run yet"."""
    outcome = f"{last['outcome']} (contended)" if last.get("contended") else last["outcome"]
    line = f"last run {outcome}{_when(last.get('finished_at'))}"
    contended = last.get("contended_runs") or 0
    if contended:
        figure = last.get("contended_epoch_seconds")
        shown = f", last {figure:.3f} s/epoch" if figure is not None else ""
        line += f"; {contended} run{'s' if contended > 1 else ''} contended ({last.get('contention')}{shown})"
    if last.get("epoch_seconds") is None:
        return line + ("; no clean figure yet" if contended else "; no ok run yet")
    fraction = last.get("fraction") or 1.0
    share = f" ({fraction:.0%} epoch)" if fraction < 1 else ""
    mfu = f", MFU {last['mfu_ratio']:.1%}" if last.get("mfu_ratio") is not None else ""
    unstable = f", unstable (runs vary {last['variation_ratio']:.1%})" if last.get("unstable") else ""
    return (f"{line}; last ok {last['epoch_seconds']:.3f} s/epoch{share}, config {last['config']}"
            f"{_when(last.get('success_at'))}{mfu}{unstable}")  # fmt: skip


def _when(moment: float | None) -> str:
    import time

    return "" if moment is None else time.strftime(" at %Y-%m-%d %H:%M", time.localtime(moment))
