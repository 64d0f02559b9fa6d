"""Shared fixtures: small synthetic datasets made once per test session."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from benchd.datasets import layout
from benchd.datasets.formats import get_format, names

SMALL_SCALE = 0.01
QUIET_CPU_LIMIT = 0.2  # busier than this, over a second, and a test that measures foreign load cannot judge


def require_quiet_machine() -> None:
    """Skip, with the measured reason, a test whose assertion holds only on an otherwise idle machine."""
    busy = psutil.cpu_percent(interval=1.0) / 100
    if busy > QUIET_CPU_LIMIT:
        pytest.skip(f"needs a quiet machine: its CPUs were {busy:.0%} busy over the second before the test")


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding all three datasets at 1% of their real size."""
    data_dir = tmp_path_factory.mktemp("benchd-data")
    for name in names():
        layout.ensure(data_dir, get_format(name), scale=SMALL_SCALE, seed=0)
    return data_dir


@pytest.fixture
def data_dir(small_data_dir: Path, tmp_path: Path) -> Path:
    """A fresh data directory sharing the session's small datasets (the store is per test)."""
    (tmp_path / "datasets").symlink_to(small_data_dir / "datasets")
    return tmp_path
