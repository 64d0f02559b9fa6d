"""Where benchd keeps its data: the platform's convention unless told otherwise.

Linux follows the XDG base directories ($XDG_DATA_HOME, else ~/.local/share),
macOS uses ~/Library/Application Support. `BENCHD_DATA_DIR` and `--data-dir`
override both, which is how containers point benchd at a mounted volume.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV_DATA_DIR = "BENCHD_DATA_DIR"
STORE_FILE = "benchd.sqlite3"


class DataDirError(Exception):
    """The data directory cannot be created or written."""


def default_data_dir() -> Path:
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "benchd"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / "benchd"


def ensure_writable(data_dir: Path) -> Path:
    """Create the directory and prove it can be written, before any work depends on it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataDirError(f"data directory {data_dir} is not writable: {reason}") from None
    return data_dir


def store_path(data_dir: Path) -> Path:
    return data_dir / STORE_FILE


def run_log_path(data_dir: Path, run_id: int) -> Path:
    return data_dir / "logs" / f"run-{run_id}.log"


def run_scratch_path(data_dir: Path, run_id: int) -> Path:
    """Where a run's side work (image grids, checkpoints) writes; removed when the run ends."""
    return data_dir / "logs" / f"run-{run_id}.scratch"
