"""Where datasets live under the data directory, and how a synthetic one is put there.

A dataset directory either holds data a user placed there (used as real) or a
synthetic set benchd generated, recognised by the marker file inside it. A
synthetic set is generated into a hidden sibling directory and renamed into
place only once complete, so an interrupted generation never leaves a
directory that looks usable.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from benchd.datasets.sources import Source

MARKER = "BENCHD_SYNTHETIC.json"
GENERATOR_VERSION = 1
"""Bumped when a generator's output changes, so synthetic sets of two versions never count as one."""

ProgressCallback = Callable[[int, int], None]
"""Called with (done, total) as generation advances."""


class DatasetError(Exception):
    """A dataset that cannot be used: names the file and what is wrong with it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class DatasetInfo:
    """What a run records about the data it trained on."""

    name: str
    path: str
    kind: str  # "real" or "synthetic"
    samples: int
    scale: float | None = None
    seed: int | None = None  # of a synthetic set's generator
    generator_version: int | None = None

    @property
    def fingerprint(self) -> str:
        """The data's identity, not its path: part of a run's config identity.

        Real data is the published set, known by its name and size (verified
        against the published counts by `benchd data verify`); a synthetic set
        by what generated it.
        """
        if self.kind == "synthetic":
            return f"{self.name}/synthetic/v{self.generator_version}/scale={self.scale:g}/seed={self.seed}"
        return f"{self.name}/real/{self.samples}"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "fingerprint": self.fingerprint}


class DatasetFormat(Protocol):
    """What each dataset module provides to the layout."""

    NAME: str
    RELATIVE_PATH: str

    def count_samples(self, path: Path) -> int:
        """Validate the files at `path` cheaply; raise DatasetError naming a bad file."""
        ...

    def estimate_bytes(self, scale: float) -> int: ...

    def generate(self, path: Path, scale: float, seed: int, progress: ProgressCallback) -> None:
        """Write a synthetic dataset in the real on-disk format into the empty directory `path`."""
        ...

    # What `benchd data fetch`, `import` and `verify` need (sources.py has the types).
    SOURCE: Source
    REAL_COUNTS: dict[str, int]

    def assemble(self, downloads: list[Path], staging: Path) -> None:
        """Turn the downloaded files into the layout benchd reads, in `staging`."""
        ...

    def stage_import(self, source: Path, staging: Path) -> bool:
        """If `source` is the dataset as published (archive, compressed files), assemble it; else False."""
        ...

    def counts(self, path: Path) -> dict[str, int]:
        """Decode and count everything (slow): the figures REAL_COUNTS gives for the real set."""
        ...

    def synthetic_counts(self, scale: float) -> dict[str, int] | None:
        """What a synthetic set of that scale must count (None: not checked by count)."""
        ...


def dataset_path(data_dir: Path, fmt: DatasetFormat) -> Path:
    return data_dir / "datasets" / fmt.RELATIVE_PATH


def describe(data_dir: Path, fmt: DatasetFormat) -> DatasetInfo | None:
    """Validate an existing dataset; None when it is absent."""
    path = dataset_path(data_dir, fmt)
    if not path.exists():
        return None
    if not path.is_dir():
        raise DatasetError(path, "expected a directory")
    samples = fmt.count_samples(path)
    marker = path / MARKER
    if marker.exists():
        try:
            recorded = json.loads(marker.read_text())
            scale = float(recorded["scale"])
            seed = int(recorded.get("seed", 0))
            version = int(recorded.get("generator_version", 1))  # markers before versioning: 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(marker, f"unreadable synthetic marker ({exc})") from None
        return DatasetInfo(fmt.NAME, str(path), "synthetic", samples, scale, seed, version)
    return DatasetInfo(fmt.NAME, str(path), "real", samples)


def ensure(
    data_dir: Path,
    fmt: DatasetFormat,
    *,
    scale: float = 1.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> DatasetInfo:
    """Return the dataset, generating a synthetic one first if none is there.

    A lock file serialises concurrent callers (two `benchd run`s, or the daemon
    and a CLI), so the set is generated once.
    """
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    existing = describe(data_dir, fmt)
    if existing is not None:
        return existing
    target = dataset_path(data_dir, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(data_dir, fmt):
        existing = describe(data_dir, fmt)
        if existing is not None:
            return existing
        _check_free_space(target.parent, fmt.estimate_bytes(scale))
        partial = target.parent / f".{target.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)  # left by a generation that died; we hold the lock
        partial.mkdir()
        try:
            fmt.generate(partial, scale, seed, progress or (lambda _done, _total: None))
            fmt.count_samples(partial)
            marker = {
                "generator": "benchd",
                "generator_version": GENERATOR_VERSION,
                "scale": scale,
                "seed": seed,
                "created": time.time(),
            }
            (partial / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            partial.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    info = describe(data_dir, fmt)
    assert info is not None
    return info


def _check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    margin = int(needed * 1.2)
    if free < margin:
        raise DatasetError(
            directory,
            f"not enough free disk for the synthetic dataset: needs about "
            f"{margin / 1e9:.2f} GB, {free / 1e9:.2f} GB free",
        )


def exclusive(data_dir: Path, fmt: DatasetFormat) -> AbstractContextManager[None]:
    """The dataset's lock: one process at a time generates, fetches or swaps it in (two pods of a
    DaemonSet on one node during a rollout, the daemon and a CLI)."""
    target = dataset_path(data_dir, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    return _exclusive(target.parent / f".{target.name}.lock")


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
