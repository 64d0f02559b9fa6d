"""Deep integrity checks of a dataset directory: what `benchd data verify` reports.

Real data must have the published sizes; a synthetic set must have the sizes
of its recorded scale. Cheaper checks (headers, presence) run before every
benchmark; these decode and count, so they run on request and after a fetch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchd.workloads.datasets import facts, layout, lsun, mnist, wikitext
from benchd.workloads.datasets.layout import DatasetError

# Published sizes; a test may swap in a fixture's.
EXPECTED_REAL: dict[str, dict[str, int]] = {
    "mnist": {"train": facts.MNIST_TRAIN_IMAGES, "test": facts.MNIST_TEST_IMAGES},
    "wikitext-2": {
        "train": facts.WIKITEXT2_TRAIN_TOKENS,
        "valid": facts.WIKITEXT2_VALID_TOKENS,
        "test": facts.WIKITEXT2_TEST_TOKENS,
        "vocab": facts.WIKITEXT2_VOCAB,
    },
    "lsun-classroom": {"images": facts.LSUN_CLASSROOM_IMAGES},
}
LSUN_DECODE_SAMPLE = 64


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


def _counts(name: str, path: Path) -> dict[str, int]:
    if name == "mnist":
        return {split: len(mnist.read_split(path, split).labels) for split in ("train", "test")}
    if name == "wikitext-2":
        corpus = wikitext.tokenize(path)
        return {**{split: len(ids) for split, ids in corpus.ids.items()}, "vocab": len(corpus.words)}
    env = lsun.open_env(path)
    keys = lsun.read_keys(env)
    step = max(1, len(keys) // LSUN_DECODE_SAMPLE)
    with env.begin(write=False) as txn:
        for key in keys[::step][:LSUN_DECODE_SAMPLE]:
            lsun.decode(txn.get(key), path / "data.mdb")
    return {"images": len(keys)}


def _synthetic_expectation(name: str, path: Path) -> dict[str, int] | None:
    """What a synthetic set of the recorded scale must contain (None: not checked by count)."""
    scale = float(json.loads((path / layout.MARKER).read_text())["scale"])
    if name == "mnist":
        return {
            "train": max(1, round(facts.MNIST_TRAIN_IMAGES * scale)),
            "test": max(1, round(facts.MNIST_TEST_IMAGES * scale)),
        }
    if name == "lsun-classroom":
        return {"images": lsun.image_count(scale)}
    return None if scale != 1.0 else EXPECTED_REAL["wikitext-2"]


def verify_directory(name: str, path: Path, kind: str) -> Verification:
    """Check `path` as dataset `name`; `kind` says which sizes it must have."""
    result = Verification(name, str(path), kind, ok=True)
    try:
        result.counts = _counts(name, path)
    except DatasetError as exc:
        result.ok = False
        result.problems.append(str(exc))
        return result
    expected = EXPECTED_REAL[name] if kind == "real" else _synthetic_expectation(name, path)
    for key, want in (expected or {}).items():
        have = result.counts.get(key)
        if have != want:
            result.ok = False
            result.problems.append(f"{path}: {key} has {have:,} entries, expected {want:,}")
    result.size_bytes = size_on_disk(path)
    return result


def verify(data_dir: Path, name: str) -> Verification:
    from benchd.workloads.datasets.formats import get_format

    path = layout.dataset_path(data_dir, get_format(name))
    if not path.exists():
        return Verification(name, str(path), "absent", ok=False, problems=[f"{path}: absent"])
    kind = "synthetic" if (path / layout.MARKER).exists() else "real"
    return verify_directory(name, path, kind)
