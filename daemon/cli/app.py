"""The `benchd` Typer application and what every command shares: options, exit codes, errors.

Bad input exits with code 2 and one line on stderr, before anything is
written; a run that fails exits 1; every run ok exits 0. Heavy modules are
imported inside the commands so `benchd --help` stays instant and torch-free.
"""

from __future__ import annotations

import shutil
import signal
import textwrap
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from benchd import __version__
from benchd.text import terminal

EXIT_FAILED_RUN = 1
EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="benchd",
    help="Measure how fast this machine trains four PyTorch workloads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Inspect and prepare the datasets under the data directory.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
config_app = typer.Typer(help="The daemon's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _data_dir_path(value: str) -> Path:
    """`--data-dir ''` is a mistake (it would be the working directory), not the default."""
    if not value.strip():
        raise typer.BadParameter("must be a directory path, not blank")
    return Path(value)


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        parser=_data_dir_path,
        help="Data directory (datasets, results store, logs). Default: BENCHD_DATA_DIR or the platform's.",
        show_default=False,
    ),
]
ConfigFileOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file. Default: BENCHD_CONFIG, else embedded defaults."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Every column: setup, config, timing, data, workers, all sensors.")
]
TimingOption = Annotated[
    str,
    typer.Option(
        help="reference: time what the published comparison timed (its data pipeline, host reads, "
        "validation, images, checkpoints); device: the training steps alone on data held on the device. "
        "See docs/workloads.md."
    ),
]


ModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        help="A model option of WORKLOAD over its preset's, NAME=INTEGER (repeatable; `benchd workloads "
        "--json` lists each workload's, with bounds).",
    ),
]


def model_options(given: list[str] | None) -> dict[str, int] | None:
    """--option NAME=INTEGER values as the request's options (the workload checks names and bounds)."""
    if not given:
        return None
    options: dict[str, int] = {}
    for text in given:
        name, equals, value = text.partition("=")
        if not equals or not name.strip() or not value.strip().lstrip("-").isdecimal() or not value.isascii():
            fail(f"--option: {text!r} is not NAME=INTEGER")
        options[name.strip()] = int(value)
    return options


SuiteOption = Annotated[
    str | None,
    typer.Option(
        help="Run the suite's presets, fraction and epochs for WORKLOAD, as every machine that runs the "
        "suite does (standard-v1, standard-v2; docs/cli.md).",
        show_default=False,
    ),
]
PrecisionOption = Annotated[
    str | None,
    typer.Option(
        help="fp32 (float32, as published; the default), tf32 (matmuls in TF32, Ampere and newer), amp-fp16 "
        "or amp-bf16 (autocast; fp16 with a gradient scaler). Part of the run's config.",
        show_default=False,
    ),
]
CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the model. Compilation runs before the first epoch and is reported apart "
        "(compile seconds); a recompilation inside an epoch fails the run. Part of the run's config.",
    ),
]
ChannelsLastOption = Annotated[
    bool,
    typer.Option(
        "--channels-last",
        help="DCGAN and Siamese: channels-last (NHWC) memory format for weights and images. Part of the "
        "run's config.",
    ),
]
DeterministicOption = Annotated[
    bool,
    typer.Option(
        "--deterministic",
        help="Seed every random stream and use deterministic kernels only; record a fingerprint of the "
        "losses and final weights, which runs of the config on the same software stack must share. Part of "
        "the run's config.",
    ),
]


def say(message: str, *, err: bool = False, nl: bool = True) -> None:
    """Print for a person at a terminal. Messages carry strings from outside (hostnames, device names,
    paths, torch's errors): their control characters are shown, never obeyed (benchd.text.terminal)."""
    typer.echo(terminal(message, multiline=True), err=err, nl=nl)


def say_wrapped(message: str, *, indent: int = 4) -> None:
    """A long line for a person, wrapped at the terminal's width (COLUMNS, else the terminal's; piped
    output is not wrapped) with later lines indented, and never broken inside a word: identifiers such as
    preset names and config ids stay whole."""
    width = shutil.get_terminal_size((0, 0)).columns
    if width > indent + 20:
        message = textwrap.fill(
            message, width, subsequent_indent=" " * indent, break_long_words=False, break_on_hyphens=False
        )
    say(message)


def fail(message: str) -> NoReturn:
    """Report bad input the way every command does: one line, exit 2, no traceback."""
    say(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupt_on_termination() -> None:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so the child is stopped and the run recorded.

    The child runs in its own session: without this, killing `benchd run` would
    leave it training on, unrecorded.
    """
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"benchd {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """benchd: training microbenchmarks as a service."""


def resolve_data_dir(option: Path | None) -> Path:
    from benchd.paths import DataDirError, default_data_dir, ensure_writable

    try:
        return ensure_writable(option if option is not None else default_data_dir())
    except DataDirError as exc:
        fail(str(exc))
