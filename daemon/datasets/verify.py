"""Deep integrity checks of a dataset directory: what `benchd data verify` reports.

Real data must have the published sizes; a synthetic set must have the sizes
of its recorded scale. Cheaper checks (headers, presence) run before every
benchmark; these decode and count, so they run on request and after a fetch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchd.datasets import layout
from benchd.datasets.formats import get_format, names
from benchd.datasets.layout import DatasetError

# The published sizes (each dataset module's REAL_COUNTS); a test may swap in a fixture's.
EXPECTED_REAL: dict[str, dict[str, int]] = {name: get_format(name).REAL_COUNTS for name in names()}


@dataclass
class Verification:
    name: str
    path: str
    kind: str  # real, synthetic, absent
    ok: bool
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _recorded_scale(path: Path) -> float:
    return float(json.loads((path / layout.MARKER).read_text())["scale"])


def verify_directory(name: str, path: Path, kind: str) -> Verification:
    """Check `path` as dataset `name`; `kind` says which sizes it must have."""
    fmt = get_format(name)
    result = Verification(name, str(path), kind, ok=True)
    try:
        result.counts = fmt.counts(path)
    except DatasetError as exc:
        result.ok = False
        result.problems.append(str(exc))
        return result
    expected = EXPECTED_REAL[name] if kind == "real" else fmt.synthetic_counts(_recorded_scale(path))
    for key, want in (expected or {}).items():
        have = result.counts.get(key)
        if have != want:
            result.ok = False
            result.problems.append(f"{path}: {key} has {have:,} entries, expected {want:,}")
    result.size_bytes = size_on_disk(path)
    return result


def verify(data_dir: Path, name: str) -> Verification:
    path = layout.dataset_path(data_dir, get_format(name))
    if not path.exists():
        return Verification(name, str(path), "absent", ok=False, problems=[f"{path}: absent"])
    kind = "synthetic" if (path / layout.MARKER).exists() else "real"
    return verify_directory(name, path, kind)
