"""Files a user names, made hostile: FIFOs, devices, directories, endless and oversized files, gzip bombs.

Each is one line and exit 2 from the CLI (no traceback, no hang), and nothing
reads more than its cap, whatever `stat` says.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchd import userfiles
from benchd.results.bundle import MAX_BUNDLE_BYTES

from .test_cli import benchd

NOT_REGULAR = {"fifo": "a FIFO", "directory": "a directory", "device": "a device"}


def hostile(tmp_path: Path, kind: str) -> Path:
    """A path of the given kind; a FIFO with no writer, which would block a plain open() forever."""
    if kind == "device":
        return Path("/dev/zero")
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_reading_anything_but_a_regular_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    with pytest.raises(userfiles.UserFileError, match=NOT_REGULAR[kind]):
        userfiles.read_bytes(hostile(tmp_path, kind), 1024, "bundle")


def test_the_cap_is_on_bytes_read_not_on_what_stat_reports(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(10 * userfiles.MIB)  # no blocks on disk: read() still yields 10 MiB of zeros
    assert len(userfiles.read_bytes(sparse, 10 * userfiles.MIB)) == 10 * userfiles.MIB
    with pytest.raises(userfiles.UserFileError, match="larger than 1 MiB"):
        userfiles.read_bytes(sparse, userfiles.MIB, "config file")


@pytest.mark.parametrize("kind", NOT_REGULAR)
@pytest.mark.parametrize(
    "command",
    [("compare", "{path}"), ("serve", "--config", "{path}", "--port", "0"),
     ("trigger", "vae", "--token-file", "{path}", "--url", "http://127.0.0.1:9")],
)  # fmt: skip
def test_commands_given_a_fifo_device_or_directory_say_so_in_one_line(
    tmp_path: Path, kind: str, command: tuple[str, ...]
) -> None:
    path = hostile(tmp_path, kind)
    result = benchd(*(part.format(path=path) for part in command), data_dir=tmp_path / "data", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(path) in line and "regular file" in line


def test_a_bundle_over_the_cap_is_refused_after_reading_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.write(json.dumps({"format": "benchd-results"}).encode())
        handle.truncate(MAX_BUNDLE_BYTES + 1)
    result = benchd("compare", str(big), timeout=60)
    assert result.returncode == 2 and "larger than 64 MiB" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_gzip_bomb_in_an_mnist_import_is_refused_as_it_decompresses(tmp_path: Path) -> None:
    """1 GiB of zeros in about a megabyte of gzip: refused at the 4x cap, with memory bounded by the cap."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    zeros = bytes(16 * userfiles.MIB)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as bomb:
        for _ in range(64):
            bomb.write(zeros)
    assert (folder / "train-images-idx3-ubyte.gz").stat().st_size < 8 * userfiles.MIB
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from benchd.datasets import mnist\n"
        "from benchd.datasets.layout import DatasetError\n"
        "try:\n"
        "    mnist._read_bytes(Path(sys.argv[1]))\n"
        "except DatasetError as exc:\n"
        "    print(exc)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked parent (pytest) across exec.
        "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "print(int(hwm.split()[1]) * 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder / "train-images-idx3-ubyte.gz")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    message, peak = result.stdout.strip().splitlines()
    assert "decompresses to more than" in message
    from benchd.datasets.mnist import MAX_IDX_BYTES

    assert int(peak) < 2 * MAX_IDX_BYTES + 200 * userfiles.MIB  # read whole, it would be over 1 GiB
