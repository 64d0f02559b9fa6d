"""What a published dataset is downloaded as, and how its archives are unpacked without risk.

Each dataset module (mnist, wikitext, lsun) declares its own Source and
assembles its downloads with these helpers; fetch.py only downloads,
verifies and swaps in.
"""

from __future__ import annotations

import gzip
import shutil
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def extract_zip(archive_path: Path, target: Path, rename: Callable[[str], str | None]) -> None:
    """Extract the members `rename` maps to a relative path (None skips one) into target."""
    with zipfile.ZipFile(archive_path) as archive:
        for member in _safe_members(archive, target):
            if member.is_dir():
                continue
            relative = rename(member.filename)
            if relative is None:
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)


def gunzip(archive_path: Path, target: Path) -> None:
    """Decompress one .gz file into `target` (a file path)."""
    with gzip.open(archive_path, "rb") as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
