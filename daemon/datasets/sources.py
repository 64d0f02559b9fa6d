"""What a published dataset is downloaded as, and how its archives are unpacked without risk.

Each dataset module (mnist, wikitext, lsun) declares its own Source and
assembles its downloads with these helpers; fetch.py only downloads,
verifies and swaps in.
"""

from __future__ import annotations

import gzip
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

CHUNK = 1 << 20


class FetchError(Exception):
    """A fetch or import that cannot complete; the message is one line that says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    digest: tuple[str, str] | None  # (hashlib algorithm, hex digest)
    max_bytes: int


@dataclass(frozen=True)
class Source:
    mirrors: tuple[str, ...]  # base URLs; a file's URL is mirror + "/" + its name
    files: tuple[RemoteFile, ...]


def _safe_members(archive: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    """Refuse absolute paths, `..` and symbolic links: nothing may land outside the target."""
    root = target.resolve()
    for member in archive.infolist():
        name = member.filename
        mode = member.external_attr >> 16
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise FetchError(f"archive member {name!r} has an absolute path; refusing to extract")
        if stat.S_ISLNK(mode):
            raise FetchError(f"archive member {name!r} is a symbolic link; refusing to extract")
        if not (root / name).resolve().is_relative_to(root):
            raise FetchError(f"archive member {name!r} would land outside {target}; refusing to extract")
    return archive.infolist()


# How much an archive may unpack to: this many times the dataset's known size, plus a margin. More is
# not the dataset (a zip or gzip bomb), and is refused before it fills the disk.
UNPACK_FACTOR = 4
UNPACK_MARGIN_BYTES = 256 << 20


def unpack_limit(known_bytes: int) -> int:
    return UNPACK_FACTOR * known_bytes + UNPACK_MARGIN_BYTES


def _too_big(archive_path: Path, limit: int) -> FetchError:
    return FetchError(
        f"{archive_path.name} unpacks to more than {limit:,} bytes, far more than this dataset; refusing"
    )


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy_bounded(
    source: _Readable, out: IO[bytes], budget: list[int], archive_path: Path, limit: int
) -> None:
    """Copy until the source ends or the budget (bytes still allowed, shared by all members) runs out."""
    while chunk := source.read(CHUNK):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise _too_big(archive_path, limit)
        out.write(chunk)


@contextmanager
def _archive_errors(archive_path: Path) -> Iterator[None]:
    """A bad CRC or a truncated archive is one line naming the file, never a traceback."""
    try:
        yield
    except (zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise FetchError(f"{archive_path.name} is damaged or truncated ({exc}); download it again") from None


def extract_zip(archive_path: Path, target: Path, rename: Callable[[str], str | None], limit: int) -> None:
    """Extract the members `rename` maps to a relative path (None skips one) into target, unpacking at
    most `limit` bytes in all (declared sizes are checked first, actual bytes as they come)."""
    with _archive_errors(archive_path), zipfile.ZipFile(archive_path) as archive:
        chosen = [
            (member, relative)
            for member in _safe_members(archive, target)
            if not member.is_dir() and (relative := rename(member.filename)) is not None
        ]
        if sum(member.file_size for member, _ in chosen) > limit:
            raise _too_big(archive_path, limit)
        budget = [limit]
        for member, relative in chosen:
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(destination, "wb") as out:
                _copy_bounded(source, out, budget, archive_path, limit)


def gunzip(archive_path: Path, target: Path, limit: int) -> None:
    """Decompress one .gz file into `target` (a file path), at most `limit` bytes of it."""
    with _archive_errors(archive_path), gzip.open(archive_path, "rb") as source, open(target, "wb") as out:
        _copy_bounded(source, out, [limit], archive_path, limit)


def refuse_links_out(folder: Path) -> None:
    """A folder to import may not reach outside itself through a symbolic link, nor hold a FIFO, device or
    socket, which a reader would block on or read without end."""
    root = folder.resolve()
    for path in folder.rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise FetchError(f"{path} is a symbolic link out of {folder}; refusing to import through it")
        kind = path.stat().st_mode if path.exists() else 0
        if kind and not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            raise FetchError(f"{path} is not a regular file or folder; refusing to import it")
