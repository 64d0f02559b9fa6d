"""Fetching, importing and verifying real datasets, against a local HTTP server serving fixtures."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from benchd.datasets import fetch, layout, mnist, sources, verify, wikitext
from benchd.datasets.fetch import FetchError, RemoteFile, Source

from .daemon_process import free_port
from .test_datasets import idx_bytes


class FixtureServer(http.server.ThreadingHTTPServer):
    """Serves `files` by path, honours Range, and can cut one response off halfway."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FixtureHandler)
        self.files: dict[str, bytes] = {}
        self.drop_once: set[str] = set()
        self.range_requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/data"


class FixtureHandler(http.server.BaseHTTPRequestHandler):
    server: FixtureServer

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        header = self.headers.get("Range")
        if header:
            self.server.range_requests.append(self.path)
            start = int(header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path in self.server.drop_once:
            self.server.drop_once.discard(self.path)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    httpd = FixtureServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def publish(
    server: FixtureServer, monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes]
) -> None:
    """Serve the files and make them the dataset's known source, with their MD5s."""
    for filename, body in files.items():
        server.files[f"/data/{filename}"] = body
    remote = tuple(RemoteFile(f, ("md5", hashlib.md5(b).hexdigest()), 1 << 26) for f, b in files.items())
    monkeypatch.setitem(fetch.SOURCES, name, Source((server.base,), remote))


def mnist_files(train: int = 30, test: int = 10) -> dict[str, bytes]:
    rng = np.random.default_rng(2)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(test) % 10,
    }
    return {f"{name}.gz": gzip.compress(idx_bytes(array)) for name, array in arrays.items()}


@pytest.fixture
def small_mnist_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(verify.EXPECTED_REAL, "mnist", {"train": 30, "test": 10})


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def test_fetch_mnist_replaces_a_synthetic_set(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch, small_mnist_expected: None
) -> None:
    layout.ensure(tmp_path, mnist, scale=0.001)
    publish(server, monkeypatch, "mnist", mnist_files())
    result = fetch.fetch(tmp_path, "mnist")
    assert result.ok and result.kind == "real" and result.counts == {"train": 30, "test": 10}
    target = tmp_path / "datasets" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(mnist.FILES.values())  # raw IDX, no marker
    assert layout.describe(tmp_path, mnist).kind == "real"
    assert [p.name for p in (tmp_path / "datasets").iterdir() if p.name.startswith(".mnist")] == [
        ".mnist.lock"
    ]


def test_fetch_missing_keeps_a_real_set_and_replaces_a_synthetic_one(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch, small_mnist_expected: None
) -> None:
    """What each pod of a DaemonSet runs at start: only what its node lacks is downloaded."""
    layout.ensure(tmp_path, mnist, scale=0.001)
    publish(server, monkeypatch, "mnist", mnist_files())
    first = fetch.fetch(tmp_path, "mnist", missing_only=True)
    assert first is not None and first.kind == "real"
    server.files.clear()  # a second fetch would fail now: it must not try
    assert fetch.fetch(tmp_path, "mnist", missing_only=True) is None
    assert layout.describe(tmp_path, mnist).kind == "real"


def test_fetch_resumes_after_a_dropped_connection(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch, small_mnist_expected: None
) -> None:
    publish(server, monkeypatch, "mnist", mnist_files())
    server.drop_once.add("/data/train-images-idx3-ubyte.gz")
    assert fetch.fetch(tmp_path, "mnist").ok
    assert server.range_requests == ["/data/train-images-idx3-ubyte.gz"]


def test_checksum_mismatch_deletes_and_keeps_the_previous_state(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic = layout.ensure(tmp_path, mnist, scale=0.001)
    publish(server, monkeypatch, "mnist", mnist_files())
    server.files["/data/t10k-labels-idx1-ubyte.gz"] = b"tampered"
    with pytest.raises(FetchError) as caught:
        fetch.fetch(tmp_path, "mnist")
    message = str(caught.value)
    expected = hashlib.md5(mnist_files()["t10k-labels-idx1-ubyte.gz"]).hexdigest()
    assert "t10k-labels-idx1-ubyte.gz: md5" in message and expected in message and "deleted" in message
    assert not list((tmp_path / "datasets").rglob("*.part"))
    assert layout.describe(tmp_path, mnist) == synthetic


def test_404_names_the_url(tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(server, monkeypatch, "mnist", mnist_files())
    del server.files["/data/train-labels-idx1-ubyte.gz"]
    with pytest.raises(FetchError, match=r"train-labels-idx1-ubyte.gz: HTTP 404"):
        fetch.fetch(tmp_path, "mnist")
    assert not (tmp_path / "datasets" / "mnist").exists()


def test_offline_fetch_fails_fast_with_the_url_and_the_way_out(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/mirror"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchd", "data", "fetch", "wikitext-2", "--url", url,
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"{url}/wikitext-2-v1.zip" in lines[0] and "benchd data import wikitext-2 PATH" in lines[0]


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/absolute.txt", "wikitext-2/../../escaped.txt"])
def test_archive_members_outside_the_target_are_refused(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch, member: str
) -> None:
    data_dir = tmp_path / "data"
    publish(server, monkeypatch, "wikitext-2", {"wikitext-2-v1.zip": zip_bytes({member: b"boo"})})
    with pytest.raises(FetchError, match="refusing to extract"):
        fetch.fetch(data_dir, "wikitext-2")
    assert not (tmp_path / "escaped.txt").exists() and not (data_dir / "escaped.txt").exists()
    assert not (data_dir / "datasets" / "wikitext-2").exists()


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("wikitext-2/wiki.train.tokens")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    path = tmp_path / "evil.zip"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(FetchError, match="symbolic link"):
        fetch.extract_zip(path, tmp_path / "out", lambda name: name, 1 << 20)


def _import_bad_input(tmp_path: Path, name: str, source: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    return subprocess.run(
        [sys.executable, "-m", "benchd", "data", "import", name, str(source),
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def _one_line_exit_2(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert all(fragment in line for fragment in fragments), line


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "UNPACK_MARGIN_BYTES", 0)  # the cap is then 4x the dataset's size
    limit = sources.unpack_limit(wikitext.estimate_bytes(1.0))
    bomb = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("wikitext-2/wiki.train.tokens", "w", force_zip64=True) as member,
    ):
        for _ in range(limit // (1 << 20) + 2):
            member.write(bytes(1 << 20))
    assert bomb.stat().st_size < limit // 100
    with pytest.raises(FetchError, match="unpacks to more than"):
        fetch.import_dataset(tmp_path / "data", "wikitext-2", bomb)
    assert not (tmp_path / "data" / "datasets" / "wikitext-2").exists()
    assert list((tmp_path / "data" / "datasets").glob("*")) == []  # nothing left behind


def test_a_gzip_bomb_is_cut_off_at_the_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "UNPACK_MARGIN_BYTES", 0)
    limit = sources.unpack_limit(mnist.estimate_bytes(1.0))
    source = tmp_path / "raw"
    source.mkdir()
    with gzip.open(source / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as bomb:
        for _ in range(limit // (1 << 20) + 2):
            bomb.write(bytes(1 << 20))
    with pytest.raises(FetchError, match="unpacks to more than"):
        fetch.import_dataset(tmp_path / "data", "mnist", source)
    assert list((tmp_path / "data" / "datasets").glob("*")) == []


def test_damaged_and_truncated_archives_are_one_line(tmp_path: Path) -> None:
    stored = tmp_path / "crc.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("wikitext-2/wiki.train.tokens", b"a b c\n" * 1000)
    data = bytearray(stored.read_bytes())
    data[data.index(b"a b c") + 100] ^= 0xFF  # a flipped bit in the member's bytes
    stored.write_bytes(bytes(data))
    _one_line_exit_2(_import_bad_input(tmp_path, "wikitext-2", stored), "crc.zip is damaged or truncated",
                     "Bad CRC-32")  # fmt: skip
    raw = _raw_mnist(tmp_path)
    cut = raw / "train-labels-idx1-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:-20])
    _one_line_exit_2(_import_bad_input(tmp_path, "mnist", raw), "train-labels-idx1-ubyte.gz is damaged")
    assert not (tmp_path / "d" / "datasets" / "mnist").exists()


def test_a_symlink_out_of_an_imported_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_text("not a dataset")
    source = _raw_mnist(tmp_path)
    (source / "extra").symlink_to(outside)
    _one_line_exit_2(_import_bad_input(tmp_path, "mnist", source), "is a symbolic link out of")
    inside = tmp_path / "linked-within"
    inside.mkdir()
    for path in source.glob("*.gz"):
        (inside / path.name).write_bytes(path.read_bytes())
    (inside / "alias.gz").symlink_to(inside / "t10k-labels-idx1-ubyte.gz")  # within the folder: fine
    fetch.refuse_links_out(inside)


def test_a_fifo_in_an_imported_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    source = _raw_mnist(tmp_path)
    (source / "train-labels-idx1-ubyte.gz").unlink()
    os.mkfifo(source / "train-labels-idx1-ubyte.gz")  # no writer: a reader would wait forever
    _one_line_exit_2(_import_bad_input(tmp_path, "mnist", source), "not a regular file or folder")


def wikitext_zip(train: str, valid: str, test: str) -> bytes:
    return zip_bytes({
        "wikitext-2/wiki.train.tokens": train.encode(),
        "wikitext-2/wiki.valid.tokens": valid.encode(),
        "wikitext-2/wiki.test.tokens": test.encode(),
    })  # fmt: skip


def test_fetch_wikitext_and_verify_counts(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(
        server,
        monkeypatch,
        "wikitext-2",
        {"wikitext-2-v1.zip": wikitext_zip(" a b c \n\n d \n", " a e \n", " f \n")},
    )
    monkeypatch.setitem(verify.EXPECTED_REAL, "wikitext-2", {"train": 7, "valid": 3, "test": 2, "vocab": 7})
    result = fetch.fetch(tmp_path, "wikitext-2")
    assert result.ok and result.counts == {"train": 7, "valid": 3, "test": 2, "vocab": 7}
    assert (tmp_path / "datasets" / "wikitext-2" / "train.txt").read_text() == " a b c \n\n d \n"
    monkeypatch.setitem(
        verify.EXPECTED_REAL, "wikitext-2", {"train": 2_088_628, "valid": 3, "test": 2, "vocab": 7}
    )
    again = verify.verify(tmp_path, "wikitext-2")
    assert not again.ok and "train has 7 entries, expected 2,088,628" in again.problems[0]


def lsun_directory(path: Path, images: int, corrupt: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for index in range(images):
            buffer = io.BytesIO()
            Image.new("RGB", (300, 256), (index, 0, 0)).save(buffer, format="WEBP")
            txn.put(
                f"{index:040x}".encode(), b"garbage" if corrupt and index == images - 1 else buffer.getvalue()
            )
    env.close()


def test_fetch_lsun_zip_and_import_directory(
    tmp_path: Path, server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "classroom_train_lmdb"
    lsun_directory(source, 5)
    archive = zip_bytes({f"classroom_train_lmdb/{p.name}": p.read_bytes() for p in source.iterdir()})
    publish(server, monkeypatch, "lsun-classroom", {"classroom_train_lmdb.zip": archive})
    monkeypatch.setitem(verify.EXPECTED_REAL, "lsun-classroom", {"images": 5})
    assert fetch.fetch(tmp_path / "a", "lsun-classroom").counts == {"images": 5}
    linked = fetch.import_dataset(tmp_path / "b", "lsun-classroom", source, symlink=True)
    target = tmp_path / "b" / "datasets" / "lsun" / "classroom_train_lmdb"
    assert linked.ok and target.is_symlink() and target.resolve() == source.resolve()


def test_import_mnist_directory_by_copy(tmp_path: Path, small_mnist_expected: None) -> None:
    source = tmp_path / "my-mnist"
    source.mkdir()
    for name, body in mnist_files().items():
        (source / name.removesuffix(".gz")).write_bytes(gzip.decompress(body))
    result = fetch.import_dataset(tmp_path / "data", "mnist", source)
    assert result.ok and result.kind == "real"
    target = tmp_path / "data" / "datasets" / "mnist"
    assert not target.is_symlink() and (target / "train-images-idx3-ubyte").exists()
    assert (source / "train-images-idx3-ubyte").exists()  # the user's copy is untouched


def test_import_refuses_bad_data_and_keeps_the_previous_state(
    tmp_path: Path, small_mnist_expected: None
) -> None:
    synthetic = layout.ensure(tmp_path / "data", mnist, scale=0.001)
    source = tmp_path / "truncated"
    source.mkdir()
    for name, body in mnist_files().items():
        (source / name.removesuffix(".gz")).write_bytes(gzip.decompress(body)[:-50])
    with pytest.raises(FetchError, match="not a usable mnist"):
        fetch.import_dataset(tmp_path / "data", "mnist", source)
    assert layout.describe(tmp_path / "data", mnist) == synthetic


def test_verify_and_status_on_good_truncated_and_corrupt_data(
    tmp_path: Path, small_mnist_expected: None
) -> None:
    data_dir = tmp_path / "data"
    fetch.import_dataset(data_dir, "mnist", _raw_mnist(tmp_path))
    lsun_directory(data_dir / "datasets" / "lsun" / "classroom_train_lmdb", 3, corrupt=True)
    layout.ensure(data_dir, fetch.get_format("wikitext-2"), scale=0.001)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}

    def benchd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchd", "data", *args, "--data-dir", str(data_dir), "--json"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip

    status = {row["name"]: row for row in json.loads(benchd("status").stdout)}
    assert status["mnist"]["kind"] == "real" and status["wikitext-2"]["kind"] == "synthetic"
    assert status["mnist"]["size_bytes"] > 0
    verified = benchd("verify")
    assert verified.returncode == 1
    results = {row["name"]: row for row in json.loads(verified.stdout)}
    assert results["wikitext-2"]["ok"] is True
    assert results["lsun-classroom"]["ok"] is False
    assert "not a decodable image" in results["lsun-classroom"]["problems"][0]
    images = data_dir / "datasets" / "mnist" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    truncated = verify.verify(data_dir, "mnist")
    assert not truncated.ok and str(images) in truncated.problems[0]


def _raw_mnist(tmp_path: Path) -> Path:
    source = tmp_path / "raw-mnist"
    source.mkdir()
    for name, body in mnist_files().items():
        (source / name).write_bytes(body)  # .gz files are accepted and expanded
    return source


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "all", "/tmp"], "import one dataset at a time"),
        (["import", "imagenet", "/tmp"], "unknown dataset 'imagenet'"),
        (["import", "mnist", "/nonexistent/path"], "/nonexistent/path: no such file or directory"),
        (["fetch", "mnist", "wikitext-2", "--url", "http://127.0.0.1:9/x"], "--url applies to one dataset"),
    ],
)
def test_data_command_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchd", "data", *args, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_an_offline_fetch_names_every_mirror_it_tried(tmp_path: Path) -> None:
    """The published source's several mirrors, all unreachable: each is named with why, not just the last."""
    from benchd.datasets.sources import RemoteFile

    mirrors = tuple(f"http://127.0.0.1:{free_port()}/mirror-{n}" for n in range(3))
    archive = RemoteFile("wikitext-2-v1.zip", None, 1 << 20)
    with pytest.raises(FetchError) as caught:
        fetch.download_file(mirrors, archive, tmp_path, lambda *_: None)
    message = str(caught.value)
    assert "from any of 3 mirror(s)" in message
    assert all(f"{mirror}/wikitext-2-v1.zip: " in message for mirror in mirrors)
    assert not list(tmp_path.iterdir())  # no partial file left behind
