"""MNIST in its published IDX format (raw or gzip), and a synthetic twin.

IDX: a big-endian header (two zero bytes, a type code, the number of
dimensions, then one uint32 per dimension) followed by the data. MNIST uses
type 0x08 (unsigned byte): images have three dimensions, labels one.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchd import userfiles
from benchd.datasets import facts
from benchd.datasets.layout import DatasetError, ProgressCallback
from benchd.datasets.sources import CHUNK, UNPACK_FACTOR, RemoteFile, Source, gunzip, unpack_limit

NAME = "mnist"
RELATIVE_PATH = "mnist"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_UBYTE = 0x08


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, 28, 28) uint8
    labels: np.ndarray  # (n,) uint8


def find_file(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(directory / stem, "missing (looked for it raw and as .gz)")


# The largest IDX file (60,000 training images of 28x28 bytes and a 16-byte header), and what any one file
# may read to: UNPACK_FACTOR times it. A gzip bomb is refused as it decompresses, not after.
LARGEST_IDX_BYTES = 16 + facts.MNIST_TRAIN_IMAGES * 28 * 28
MAX_IDX_BYTES = UNPACK_FACTOR * LARGEST_IDX_BYTES


def _read_bytes(path: Path) -> bytes:
    """An IDX file's bytes, raw or decompressed as a stream, never more than MAX_IDX_BYTES of them."""
    if path.suffix != ".gz":
        try:
            return userfiles.read_bytes(path, MAX_IDX_BYTES, "MNIST file")
        except userfiles.UserFileError as exc:
            raise DatasetError(path, str(exc).split(": ", 1)[-1]) from None
    chunks: list[bytes] = []
    size = 0
    try:
        with userfiles.open_regular(path, "MNIST file") as raw, gzip.open(raw, "rb") as handle:
            while chunk := handle.read(CHUNK):
                size += len(chunk)
                if size > MAX_IDX_BYTES:
                    raise DatasetError(path, f"decompresses to more than {MAX_IDX_BYTES:,} bytes; refusing")
                chunks.append(chunk)
    except userfiles.UserFileError as exc:
        raise DatasetError(path, str(exc).split(": ", 1)[-1]) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(path, f"unreadable ({exc})") from None
    return b"".join(chunks)


def parse_idx(path: Path, data: bytes, ndim: int) -> np.ndarray:
    """Check the header against the payload and return the array it describes."""
    if len(data) < 4:
        raise DatasetError(path, "too short for an IDX header")
    zero, type_code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code != _UBYTE:
        raise DatasetError(path, f"not an unsigned-byte IDX file (magic 0x{data[:4].hex()})")
    if dims != ndim:
        raise DatasetError(path, f"expected {ndim} dimensions, header says {dims}")
    header_len = 4 + 4 * dims
    if len(data) < header_len:
        raise DatasetError(path, "truncated IDX header")
    shape = struct.unpack(f">{dims}I", data[4:header_len])
    expected = int(np.prod(shape))
    actual = len(data) - header_len
    if actual != expected:
        raise DatasetError(path, f"header promises {expected} bytes of data, file has {actual}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def read_split(directory: Path, split: str) -> Split:
    images_path = find_file(directory, FILES[f"{split}_images"])
    labels_path = find_file(directory, FILES[f"{split}_labels"])
    images = parse_idx(images_path, _read_bytes(images_path), 3)
    labels = parse_idx(labels_path, _read_bytes(labels_path), 1)
    if images.shape[1:] != (facts.MNIST_SIDE, facts.MNIST_SIDE):
        raise DatasetError(images_path, f"images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise DatasetError(labels_path, f"{len(labels)} labels for {len(images)} images")
    if len(labels) and labels.max() > 9:
        raise DatasetError(labels_path, f"label {int(labels.max())} outside 0-9")
    return Split(images, labels)


def count_samples(path: Path) -> int:
    read_split(path, "test")
    train = read_split(path, "train")
    if len(train.labels) == 0:
        raise DatasetError(find_file(path, FILES["train_labels"]), "no training samples")
    return len(train.labels)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# 5x7 bitmaps of the ten digits: the synthetic set's glyphs, so classes are learnable.
_GLYPHS = (
    ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
)


def _glyph_stamps() -> np.ndarray:
    """Each glyph scaled 3x and softened, as float intensities in [0, 1]: (10, 21, 15)."""
    bitmaps = np.array([[[c == "1" for c in row] for row in glyph] for glyph in _GLYPHS], float)
    stamps = np.kron(bitmaps, np.ones((1, 3, 3)))
    padded = np.pad(stamps, ((0, 0), (1, 1), (1, 1)))
    blurred = (
        padded[:, 1:-1, 1:-1] * 4
        + padded[:, :-2, 1:-1]
        + padded[:, 2:, 1:-1]
        + padded[:, 1:-1, :-2]
        + padded[:, 1:-1, 2:]
    ) / 8
    return np.clip(blurred, 0, 1)


def synthesize(count: int, rng: np.random.Generator) -> Split:
    stamps = _glyph_stamps()
    height, width = stamps.shape[1:]
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    rows = rng.integers(0, facts.MNIST_SIDE - height + 1, size=count)
    cols = rng.integers(0, facts.MNIST_SIDE - width + 1, size=count)
    ink = rng.uniform(170, 255, size=count)
    canvas = np.zeros((count, facts.MNIST_SIDE, facts.MNIST_SIDE), dtype=float)
    for i in range(count):
        canvas[i, rows[i] : rows[i] + height, cols[i] : cols[i] + width] = stamps[labels[i]] * ink[i]
    canvas += rng.normal(0, 12, size=canvas.shape) * (canvas > 0)
    return Split(np.clip(canvas, 0, 255).astype(np.uint8), labels)


def estimate_bytes(scale: float) -> int:
    samples = round((facts.MNIST_TRAIN_IMAGES + facts.MNIST_TEST_IMAGES) * scale)
    return samples * (facts.MNIST_SIDE**2 + 1) + 64


def generate(path: Path, scale: float, seed: int, progress: ProgressCallback) -> None:
    rng = np.random.default_rng(seed)
    sizes = {
        "train": max(1, round(facts.MNIST_TRAIN_IMAGES * scale)),
        "test": max(1, round(facts.MNIST_TEST_IMAGES * scale)),
    }
    total = sum(sizes.values())
    done = 0
    for split, count in sizes.items():
        data = synthesize(count, rng)
        write_idx(path / FILES[f"{split}_images"], data.images)
        write_idx(path / FILES[f"{split}_labels"], data.labels)
        done += count
        progress(done, total)


# -- the published download ---------------------------------------------------

# Digests are torchvision's.
SOURCE = Source(
    ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist"),
    (
        RemoteFile("train-images-idx3-ubyte.gz", ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"), 20 << 20),
        RemoteFile("train-labels-idx1-ubyte.gz", ("md5", "d53e105ee54ea40749a09fcbcd1e9432"), 1 << 20),
        RemoteFile("t10k-images-idx3-ubyte.gz", ("md5", "9fb629c4189551a2d022fa330f9573f3"), 5 << 20),
        RemoteFile("t10k-labels-idx1-ubyte.gz", ("md5", "ec29112dd5afa0611ce80d1b7f02629c"), 1 << 20),
    ),
)
REAL_COUNTS = {"train": facts.MNIST_TRAIN_IMAGES, "test": facts.MNIST_TEST_IMAGES}


def assemble(downloads: list[Path], staging: Path) -> None:
    """The gzipped IDX files, decompressed."""
    for path in downloads:
        gunzip(path, staging / path.name.removesuffix(".gz"), unpack_limit(estimate_bytes(1.0)))


def stage_import(source: Path, staging: Path) -> bool:
    """A folder of the published .gz files only is assembled; any other folder is taken as it is."""
    if source.is_dir() and not any(source.glob("*-ubyte")) and any(source.glob("*-ubyte.gz")):
        assemble(sorted(source.glob("*-ubyte.gz")), staging)
        return True
    return False


def counts(path: Path) -> dict[str, int]:
    return {split: len(read_split(path, split).labels) for split in ("train", "test")}


def synthetic_counts(scale: float) -> dict[str, int] | None:
    return {split: max(1, round(real * scale)) for split, real in REAL_COUNTS.items()}
