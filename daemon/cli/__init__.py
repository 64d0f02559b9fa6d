"""The `benchd` command line: the app (app.py), commands that run here (local.py), the dataset
commands (data.py) and commands that talk to a running daemon (remote.py)."""

from __future__ import annotations

import sys

from benchd.cli import compare, data, local, remote  # noqa: F401 - importing them registers their commands
from benchd.cli.app import app


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `benchd runs | head`
        sys.stderr.close()
