"""LSUN classroom as an LMDB of encoded images, and a synthetic twin.

The official release stores one image per key (a 40-character hex id), the
value being the encoded image (WebP; JPEG and PNG are accepted too), about
256 px on the short side. The synthetic twin writes the same: WebP scenes of
the same size, so decoding costs what it costs on the real data.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import zipfile
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image, UnidentifiedImageError

from benchd.datasets import facts
from benchd.datasets.layout import DatasetError, ProgressCallback
from benchd.datasets.sources import RemoteFile, Source, extract_zip, unpack_limit

NAME = "lsun-classroom"
RELATIVE_PATH = "lsun/classroom_train_lmdb"

_SHORT_SIDE = 256
_CHUNK = 256
_WEBP_QUALITY = 75
_GRAIN = 24  # film-grain amplitude: brings file size and decode cost near real photos'
_BYTES_PER_IMAGE_ESTIMATE = 22_000


_OPEN_ENVS: dict[tuple[int, int], lmdb.Environment] = {}


def _close_inherited_envs() -> None:
    """In a forked child (a DataLoader worker): close the copies of the parent's environments.

    LMDB must not be used across fork, and its Python binding would refuse to
    open the same file again while the inherited copy counts as open.
    """
    for env in _OPEN_ENVS.values():
        env.close()
    _OPEN_ENVS.clear()


os.register_at_fork(after_in_child=_close_inherited_envs)


def open_env(path: Path) -> lmdb.Environment:
    """Read-only and lock-free, so any number of processes (DataLoader workers) read at once.

    LMDB refuses to open one file twice in a process, so each process keeps
    one environment per file (by device and inode, which a rename keeps) and
    every reader in it shares that one: callers never close it.
    """
    data = path / "data.mdb"
    if not data.is_file():
        raise DatasetError(data, "missing: not an LMDB directory")
    stat = data.stat()
    key = (stat.st_dev, stat.st_ino)
    if key not in _OPEN_ENVS:
        try:
            _OPEN_ENVS[key] = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as exc:
            raise DatasetError(data, f"cannot be opened as LMDB ({exc})") from None
    return _OPEN_ENVS[key]


def decode(value: bytes | None, where: Path) -> Image.Image:
    if value is None:
        raise DatasetError(where, "a listed key has no entry (the database changed while it was read)")
    try:
        with Image.open(io.BytesIO(value)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(where, f"an entry is not a decodable image ({exc})") from None


def read_keys(env: lmdb.Environment) -> list[bytes]:
    with env.begin(write=False) as txn:
        return list(txn.cursor().iternext(keys=True, values=False))


def count_samples(path: Path) -> int:
    env = open_env(path)
    entries = env.stat()["entries"]
    if entries == 0:
        raise DatasetError(path / "data.mdb", "holds no images")
    with env.begin(write=False) as txn:
        _key, value = next(iter(txn.cursor()))
    decode(value, path / "data.mdb")
    return entries


def synthetic_image(index: int, seed: int) -> Image.Image:
    """A classroom-like scene: wall and floor, a board, rows of desks, texture."""
    rng = np.random.default_rng([seed, index])
    width = int(rng.integers(_SHORT_SIDE, 400))
    height = _SHORT_SIDE
    wall = rng.integers(120, 230, size=3)
    floor = rng.integers(40, 140, size=3)
    horizon = int(rng.integers(height // 3, 2 * height // 3))
    shade = np.linspace(0.8, 1.1, height, dtype=np.float32)[:, None, None]
    scene = np.empty((height, width, 3), dtype=np.float32)
    scene[:horizon] = wall
    scene[horizon:] = floor
    scene *= shade
    board_left = int(rng.integers(0, width // 2))
    board_top = int(rng.integers(10, max(11, horizon - 60)))
    scene[board_top : board_top + 50, board_left : board_left + width // 3] = rng.integers(0, 80, 3)
    for _ in range(int(rng.integers(4, 12))):
        top = int(rng.integers(horizon, height - 10))
        left = int(rng.integers(0, width - 20))
        scene[top : top + 12, left : left + int(rng.integers(20, 60))] = rng.integers(60, 200, 3)
    scene += rng.integers(-_GRAIN, _GRAIN + 1, size=scene.shape, dtype=np.int16)
    return Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))


def image_key(index: int, seed: int) -> bytes:
    return hashlib.sha1(f"benchd-synthetic-{seed}-{index}".encode()).hexdigest().encode()


def _encode_chunk(args: tuple[int, int, int]) -> list[tuple[bytes, bytes]]:
    start, stop, seed = args
    items = []
    for index in range(start, stop):
        buffer = io.BytesIO()
        synthetic_image(index, seed).save(buffer, format="WEBP", quality=_WEBP_QUALITY, method=0)
        items.append((image_key(index, seed), buffer.getvalue()))
    return items


def image_count(scale: float) -> int:
    return max(1, round(facts.LSUN_CLASSROOM_IMAGES * scale))


def estimate_bytes(scale: float) -> int:
    return image_count(scale) * _BYTES_PER_IMAGE_ESTIMATE


def generate(path: Path, scale: float, seed: int, progress: ProgressCallback) -> None:
    """Encode on every core; one writer fills the LMDB in chunk order, so output is deterministic."""
    total = image_count(scale)
    chunks = [(start, min(start + _CHUNK, total), seed) for start in range(0, total, _CHUNK)]
    env = lmdb.open(str(path), map_size=max(1 << 26, estimate_bytes(scale) * 4), subdir=True)
    done = 0
    try:
        with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
            for items in pool.imap(_encode_chunk, chunks):
                with env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key, value)
                done += len(items)
                progress(done, total)
        env.sync(True)
    finally:
        env.close()


# -- the published download ---------------------------------------------------

# LSUN publishes no digest: the content check (every entry counted, a sample decoded) vouches for it.
SOURCE = Source(("http://dl.yf.io/lsun/scenes",), (RemoteFile("classroom_train_lmdb.zip", None, 8 << 30),))
REAL_COUNTS = {"images": facts.LSUN_CLASSROOM_IMAGES}
DECODE_SAMPLE = 64


def assemble(downloads: list[Path], staging: Path) -> None:
    """The archive holds classroom_train_lmdb/{data,lock}.mdb: keep the files, drop the folder."""
    extract_zip(downloads[0], staging, lambda member: Path(member).name if member.endswith(".mdb") else None,
                unpack_limit(estimate_bytes(1.0)))  # fmt: skip


def stage_import(source: Path, staging: Path) -> bool:
    if source.is_file() and zipfile.is_zipfile(source):
        assemble([source], staging)
        return True
    return False


def counts(path: Path) -> dict[str, int]:
    """Every entry counted and an even sample of DECODE_SAMPLE decoded."""
    env = open_env(path)
    keys = read_keys(env)
    step = max(1, len(keys) // DECODE_SAMPLE)
    with env.begin(write=False) as txn:
        for key in keys[::step][:DECODE_SAMPLE]:
            decode(txn.get(key), path / "data.mdb")
    return {"images": len(keys)}


def synthetic_counts(scale: float) -> dict[str, int] | None:
    return {"images": image_count(scale)}
