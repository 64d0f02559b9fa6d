"""Readers read files written by independent writers; generators write what the readers expect."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from benchd.datasets import layout, lsun, mnist, wikitext
from benchd.datasets.layout import MARKER, DatasetError


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file built from the format's description, independently of benchd's writer."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(directory: Path, train: int, test: int, compress: bool = False) -> None:
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("t10k", test)):
        files = {
            f"{split}-images-idx3-ubyte": rng.integers(0, 256, (count, 28, 28)),
            f"{split}-labels-idx1-ubyte": np.arange(count) % 10,
        }
        for name, array in files.items():
            data = idx_bytes(array)
            if compress:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_reads_raw_and_gzip(tmp_path: Path, compress: bool) -> None:
    write_mnist(tmp_path, 30, 10, compress)
    split = mnist.read_split(tmp_path, "train")
    assert split.images.shape == (30, 28, 28)
    assert split.labels.tolist() == [i % 10 for i in range(30)]
    assert mnist.count_samples(tmp_path) == 30


def test_mnist_truncated_file_is_named(tmp_path: Path) -> None:
    write_mnist(tmp_path, 30, 10)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: header promises 23520 bytes"):
        mnist.count_samples(tmp_path)


def test_mnist_wrong_magic_and_missing_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, 30, 10)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + bytes(8))
    with pytest.raises(DatasetError, match="not an unsigned-byte IDX file"):
        mnist.count_samples(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte: missing"):
        mnist.count_samples(tmp_path)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_lsun_reader_accepts_webp_jpeg_and_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (256, 300, 3), dtype=np.uint8)) for _ in range(3)]
    env = lmdb.open(str(tmp_path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for index, (picture, fmt) in enumerate(zip(pictures, ("WEBP", "JPEG", "PNG"), strict=True)):
            txn.put(f"{index:040x}".encode(), encoded(picture, fmt))
    env.close()
    assert lsun.count_samples(tmp_path) == 3
    reader = lsun.open_env(tmp_path)
    keys = lsun.read_keys(reader)
    with reader.begin() as txn:
        decoded = [lsun.decode(txn.get(k), tmp_path) for k in keys]
    assert [d.size for d in decoded] == [(300, 256)] * 3
    assert np.array_equal(np.asarray(decoded[2]), np.asarray(pictures[2]))  # PNG is lossless


def test_lsun_dataset_transforms_to_normalised_64px(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchd.workloads.dcgan.trainer import LsunImages, image_transform

    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(b"a" * 40, encoded(Image.new("RGB", (341, 256), (255, 0, 128)), "WEBP"))
    env.close()
    monkeypatch.chdir(tmp_path)
    dataset = LsunImages(tmp_path / "db", image_transform())
    tensor, label = dataset[0]
    assert label == 0  # the one class's index, as torchvision's LSUN gives it
    assert tensor.shape == (3, 64, 64)
    assert tensor[0].mean() > 0.95 and tensor[1].mean() < -0.95
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]  # no key cache left in cwd


def test_lsun_corrupt_entry_and_non_lmdb(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(b"k" * 40, b"definitely not an image")
    env.close()
    with pytest.raises(DatasetError, match="not a decodable image"):
        lsun.count_samples(tmp_path / "db")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not an LMDB directory"):
        lsun.count_samples(tmp_path / "empty")


def reference_tokenize(directory: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The rule as docs/workloads.md states it, written plainly."""
    vocabulary: dict[str, int] = {}
    counts = {}
    for split in ("train", "valid", "test"):
        total = 0
        with open(directory / f"{split}.txt", encoding="utf8") as handle:
            for line in handle:
                for word in [*line.split(), "<eos>"]:
                    vocabulary.setdefault(word, len(vocabulary))
                    total += 1
        counts[split] = total
    return vocabulary, counts


def test_wikitext_tokenization_matches_the_reference_rule(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(" = Valkyria = \n\n The game , the game .\n", encoding="utf8")
    (tmp_path / "valid.txt").write_text(" new words here \n", encoding="utf8")
    (tmp_path / "test.txt").write_text(" the <unk> \n", encoding="utf8")
    corpus = wikitext.tokenize(tmp_path)
    vocabulary, counts = reference_tokenize(tmp_path)
    assert corpus.words == list(vocabulary)
    assert {s: len(ids) for s, ids in corpus.ids.items()} == counts == {"train": 12, "valid": 4, "test": 3}
    assert [corpus.words[i] for i in corpus.ids["train"][:4]] == ["=", "Valkyria", "=", "<eos>"]
    assert wikitext.count_samples(tmp_path) == 12


def test_full_size_synthetic_wikitext_has_the_real_counts(tmp_path: Path) -> None:
    wikitext.generate(tmp_path, 1.0, 0, lambda _d, _t: None)
    vocabulary, counts = reference_tokenize(tmp_path)
    assert len(vocabulary) == 33_278
    assert counts == {"train": 2_088_628, "valid": 217_646, "test": 245_569}


@pytest.mark.slow
def test_full_size_synthetic_mnist_has_the_real_counts(tmp_path: Path) -> None:
    mnist.generate(tmp_path, 1.0, 0, lambda _d, _t: None)
    train = mnist.read_split(tmp_path, "train")
    test = mnist.read_split(tmp_path, "test")
    assert (len(train.labels), len(test.labels)) == (60_000, 10_000)
    assert set(np.unique(train.labels).tolist()) == set(range(10))


def test_synthetic_mnist_classes_are_distinguishable() -> None:
    split = mnist.synthesize(2000, np.random.default_rng(0))
    means = np.stack([split.images[split.labels == c].mean(0) for c in range(10)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=(2, 3))
    assert distances[~np.eye(10, dtype=bool)].min() > 50


def test_generation_is_deterministic_and_marked(tmp_path: Path) -> None:
    first = layout.ensure(tmp_path / "a", mnist, scale=0.005, seed=3)
    second = layout.ensure(tmp_path / "b", mnist, scale=0.005, seed=3)
    assert first.kind == "synthetic" and first.samples == 300
    for name in mnist.FILES.values():
        assert (Path(first.path) / name).read_bytes() == (Path(second.path) / name).read_bytes()
    marker = json.loads((Path(first.path) / MARKER).read_text())
    assert marker["scale"] == 0.005 and marker["seed"] == 3


def test_lsun_synthetic_set_is_deterministic_webp(tmp_path: Path) -> None:
    info = layout.ensure(tmp_path, lsun, scale=0.0005, seed=0)
    assert info.samples == 84
    env = lsun.open_env(Path(info.path))
    keys = lsun.read_keys(env)
    with env.begin() as txn:
        value = txn.get(keys[0])
    assert value[8:12] == b"WEBP"
    assert len(keys[0]) == 40
    assert lsun.decode(value, Path(info.path)).size[1] == 256
    assert lsun._encode_chunk((0, 2, 0)) == lsun._encode_chunk((0, 2, 0))


def test_user_data_counts_as_real(tmp_path: Path) -> None:
    write_mnist(tmp_path / "datasets" / "mnist", 20, 10)
    info = layout.ensure(tmp_path, mnist)
    assert info.kind == "real"
    assert info.samples == 20


def test_interrupted_generation_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        layout.ensure(tmp_path, mnist, scale=0.01, progress=explode)
    datasets = tmp_path / "datasets"
    assert not (datasets / "mnist").exists()
    assert [p.name for p in datasets.iterdir() if not p.name.endswith(".lock")] == []
    # The next attempt starts over and succeeds.
    assert layout.ensure(tmp_path, mnist, scale=0.01).kind == "synthetic"


def test_not_enough_disk_is_refused_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(layout.shutil, "disk_usage", lambda _p: usage._replace(free=1000))
    with pytest.raises(DatasetError, match="not enough free disk"):
        layout.ensure(tmp_path, lsun, scale=1.0)
    assert not (tmp_path / "datasets" / "lsun" / "classroom_train_lmdb").exists()
