"""`benchd selftest WORKLOAD --inject-bitflip STEP`: prove that a wrong answer is caught where it starts.

Runs one deterministic config twice in the foreground, the second time with
one bit of one weight flipped before step STEP (the top exponent bit of the
largest element of the model's last one-dimensional parameter; as GPU vendors
ship error injection to test the alerting that should catch it), and shows
the two fingerprints and the first step whose loss differs. Both runs are
stored with origin `selftest`: never a baseline, a verdict or a fingerprint
another run is compared with.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from benchd.catalog import names_text
from benchd.cli.app import (
    EXIT_FAILED_RUN,
    DataDirOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    TimingOption,
    app,
    fail,
    model_options,
    resolve_data_dir,
    say,
)
from benchd.cli.local import foreground_setup, run_in_foreground

if TYPE_CHECKING:
    from benchd.results.model import Run


@app.command()
def selftest(
    workload: Annotated[str, typer.Argument(help=f"One of: {names_text()}.")],
    inject_bitflip: Annotated[
        int,
        typer.Option(
            "--inject-bitflip",
            min=0,
            help="The step (from 0, across epochs) before which the second run flips one bit of one weight.",
            show_default=False,
        ),
    ],
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset. Default: the first.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs per run. Default: 1.", show_default=False)
    ] = None,
    fraction: Annotated[float | None, typer.Option(help="Fraction of each epoch. Default: 1.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    option: ModelOption = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and synthetic pairs.")] = 1,
    timing: TimingOption = "reference",
    precision: PrecisionOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps or xpu.")] = "auto",
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before a run is stopped as `timeout`.")
    ] = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a deterministic config twice, flipping a weight's bit before STEP in the second run; exit 0 when
    the fingerprints differ from exactly that step, 1 when the flip went unseen or a run failed."""
    from benchd import catalog
    from benchd.catalog import request as request_model
    from benchd.lifecycle.recording import RunRequest
    from benchd.results.model import Origin

    values = {"workload": workload, "presets": preset, "epochs": epochs, "fraction": fraction,
              "batch_size": batch_size, "options": model_options(option), "seed": seed, "timing": timing,
              "precision": precision, "timeout": timeout, "deterministic": True}  # fmt: skip
    try:
        values["presets"] = preset or catalog.get_workload(workload).presets[0].name
        (config,) = request_model.parse({k: v for k, v in values.items() if v is not None}).configs()
    except catalog.CatalogError as exc:
        fail(str(exc))
    except ValueError:  # `-p all`
        fail("--preset: one preset, not several")
    directory = resolve_data_dir(data_dir)
    store, resolved = foreground_setup(directory, device, [config])
    requests = [RunRequest(config, resolved, directory, timeout),
                RunRequest(config, resolved, directory, timeout, inject_bitflip=inject_bitflip)]  # fmt: skip
    clean, injected = run_in_foreground(store, requests, telemetry=False, origin=Origin.SELFTEST)
    verdict = judge(clean, injected, inject_bitflip)
    if json_output:
        typer.echo(json.dumps({**verdict, "runs": [clean.to_json(), injected.to_json()]}, indent=2))
    else:
        for line in verdict["lines"]:
            say(line)
    raise typer.Exit(0 if verdict["caught"] else EXIT_FAILED_RUN)


def judge(clean: Run, injected: Run, step: int) -> dict[str, Any]:
    """Whether the injected run's fingerprint differs from the clean one's from exactly `step`."""
    from benchd.health.fingerprints import first_divergent_step

    failed = [run for run in (clean, injected) if run.outcome != "ok"]
    if failed:
        lines = [f"run {run.id} ended {run.outcome}: {run.message}" for run in failed]
        return {"caught": False, "first_divergent_step": None, "lines": lines}
    ours, theirs = clean.determinism or {}, injected.determinism or {}
    flipped = theirs.get("bitflip")
    steps = sum(epoch.steps for epoch in injected.epochs)
    if flipped is None:
        lines = [f"the runs took {steps} steps: there was no step {step} to flip a bit before"]
        return {"caught": False, "first_divergent_step": None, "lines": lines}
    divergent = first_divergent_step(
        [e.loss_bits or "" for e in clean.epochs], [e.loss_bits or "" for e in injected.epochs]
    )
    differ = ours.get("fingerprint") != theirs.get("fingerprint")
    caught = differ and divergent == step
    where = "only in the final weights" if divergent is None else f"first at step {divergent}"
    lines = [
        f"{clean.workload} {clean.preset} ({clean.config_id}, stack {ours.get('stack_id')}), {steps} steps:",
        f"  run {clean.id}: fingerprint {ours.get('fingerprint')}",
        f"  run {injected.id}: fingerprint {theirs.get('fingerprint')}, {flipped}",
        (f"caught: the fingerprints differ, {where}" if differ else "MISSED: the fingerprints agree")
        + ("" if caught else f" (the flip was before step {step})"),
    ]
    return {"caught": caught, "first_divergent_step": divergent, "lines": lines}
