"""The `benchd` command line: the app (app.py), commands that run here (local.py), the dataset
commands (data.py) and commands that talk to a running daemon (remote.py)."""

from __future__ import annotations

import sys

import typer

try:  # Typer 0.2x carries its own copy of click; earlier releases use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import ClickException  # type: ignore[assignment]

from benchd.cli import compare, data, health, local, remote, selftest  # noqa: F401 - importing them registers their commands
from benchd.cli.app import app
from benchd.text import terminal


def main() -> None:
    """Console-script entry point. Usage errors are one line and exit 2, as every other bad input is, rather
    than Typer's usage block and boxed message."""
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:  # a usage error (exit 2), or a file option that cannot be opened
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "benchd"
        if exc.format_message():  # empty after a group given no command has printed its help
            print(f"error: {terminal(exc.format_message())} (see '{command} --help')", file=sys.stderr)
        code = exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # `benchd runs | head`
        sys.stderr.close()
        code = 0
    sys.exit(code if isinstance(code, int) else 0)
