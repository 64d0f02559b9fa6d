"""Fetching the real datasets from their public sources, and importing files a user has.

Every download resumes where an interrupted one stopped (HTTP range), is
capped in size, and is checked against the digest its publisher (or
torchvision) records before anything is extracted. Extraction refuses
members that would land outside the target. The new dataset is assembled
in a hidden directory beside the target, verified, and only then swapped in,
so a failed or interrupted fetch leaves the previous state as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchd.workloads.datasets import layout
from benchd.workloads.datasets.formats import get_format
from benchd.workloads.datasets.verify import Verification, verify_directory

ProgressCallback = Callable[[str, int, int | None], None]  # file name, bytes so far, total
CHUNK = 1 << 20
TIMEOUT_SECONDS = 30.0
ATTEMPTS = 4


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


# Where the datasets are published. MNIST digests are torchvision's; the WikiText-2
# archive's SHA-256 is the one Julia's DataDeps registry records; LSUN publishes none,
# so its content check (168,103 decodable entries) is what vouches for it.
SOURCES: dict[str, Source] = {
    "mnist": Source(
        ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist"),
        (
            RemoteFile("train-images-idx3-ubyte.gz", ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"), 20 << 20),
            RemoteFile("train-labels-idx1-ubyte.gz", ("md5", "d53e105ee54ea40749a09fcbcd1e9432"), 1 << 20),
            RemoteFile("t10k-images-idx3-ubyte.gz", ("md5", "9fb629c4189551a2d022fa330f9573f3"), 5 << 20),
            RemoteFile("t10k-labels-idx1-ubyte.gz", ("md5", "ec29112dd5afa0611ce80d1b7f02629c"), 1 << 20),
        ),
    ),
    "wikitext-2": Source(
        ("https://s3.amazonaws.com/research.metamind.io/wikitext",),
        (
            RemoteFile(
                "wikitext-2-v1.zip",
                ("sha256", "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"),
                20 << 20,
            ),
        ),
    ),
    "lsun-classroom": Source(
        ("http://dl.yf.io/lsun/scenes",),
        (RemoteFile("classroom_train_lmdb.zip", None, 8 << 30),),
    ),
}

WIKITEXT_MEMBERS = {
    "wiki.train.tokens": "train.txt",
    "wiki.valid.tokens": "valid.txt",
    "wiki.test.tokens": "test.txt",
}


def mirror_env(name: str) -> str:
    return "BENCHD_MIRROR_" + name.upper().replace("-", "_")


def _download(url: str, target: Path, item: RemoteFile, progress: ProgressCallback) -> None:
    """Fetch url into target, resuming from target's current size; raise OSError or URLError."""
    have = target.stat().st_size if target.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        if have and response.status != 206:  # no range support: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if total is not None and total > item.max_bytes:
            raise FetchError(
                f"{url}: {total:,} bytes is more than the {item.max_bytes:,} allowed for {item.name}"
            )
        with open(target, "ab" if have else "wb") as out:
            while chunk := response.read(CHUNK):
                have += len(chunk)
                if have > item.max_bytes:
                    raise FetchError(
                        f"{url}: larger than the {item.max_bytes:,} bytes allowed for {item.name}"
                    )
                out.write(chunk)
                progress(item.name, have, total)
        if total is not None and have < total:
            raise ConnectionError(f"connection closed after {have:,} of {total:,} bytes")


def _check_digest(path: Path, item: RemoteFile) -> None:
    if item.digest is None:
        return
    algorithm, expected = item.digest
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        path.unlink()
        raise FetchError(
            f"{item.name}: {algorithm} {digest.hexdigest()} does not match the expected {expected}; "
            "the download was deleted"
        )


def _attempts(
    url: str, partial: Path, item: RemoteFile, progress: ProgressCallback, errors: list[str]
) -> bool:
    """Try one URL, resuming after dropped connections for as long as each attempt makes progress."""
    for _attempt in range(ATTEMPTS):
        before = partial.stat().st_size if partial.exists() else 0
        try:
            _download(url, partial, item, progress)
            return True
        except urllib.error.HTTPError as exc:
            errors.append(f"{url}: HTTP {exc.code} {exc.reason}")
            partial.unlink(missing_ok=True)
            return False  # a 404 will not get better by asking again
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            if not partial.exists() or partial.stat().st_size <= before:
                return False
    return False


def download_file(
    mirrors: tuple[str, ...], item: RemoteFile, folder: Path, progress: ProgressCallback
) -> Path:
    """Download one file, trying each mirror in turn, and check its digest."""
    partial = folder / f"{item.name}.part"
    errors: list[str] = []
    try:
        for mirror in mirrors:
            if _attempts(f"{mirror.rstrip('/')}/{item.name}", partial, item, progress, errors):
                _check_digest(partial, item)
                final = folder / item.name
                partial.rename(final)
                return final
    except FetchError:
        partial.unlink(missing_ok=True)
        raise
    partial.unlink(missing_ok=True)
    raise FetchError(f"cannot download {item.name} ({errors[-1] if errors else 'no mirror'})")


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


def _assemble(name: str, downloads: list[Path], staging: Path) -> None:
    """Turn downloaded files into the layout benchd reads."""
    if name == "mnist":
        for path in downloads:
            with gzip.open(path, "rb") as source, open(staging / path.name.removesuffix(".gz"), "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
    elif name == "wikitext-2":
        extract_zip(downloads[0], staging, lambda member: WIKITEXT_MEMBERS.get(Path(member).name))
    else:
        # The archive holds classroom_train_lmdb/{data,lock}.mdb: keep the files, drop the folder.
        extract_zip(
            downloads[0], staging, lambda member: Path(member).name if member.endswith(".mdb") else None
        )


def _swap_in(staging: Path, target: Path) -> None:
    """Replace whatever is at target (a synthetic set, say) by staging, keeping it until the swap is done."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists() or target.is_symlink():
        target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        if old.exists() or old.is_symlink():
            old.rename(target)
        raise
    if old.is_symlink() or old.is_file():
        old.unlink()
    elif old.exists():
        shutil.rmtree(old)


def _stage(data_dir: Path, name: str) -> tuple[Path, Path]:
    target = layout.dataset_path(data_dir, get_format(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.fetch-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return target, staging


def fetch(
    data_dir: Path,
    name: str,
    *,
    mirror: str | None = None,
    progress: ProgressCallback = lambda _name, _done, _total: None,
) -> Verification:
    source = SOURCES[name]
    configured = os.environ.get(mirror_env(name))
    mirrors = (mirror,) if mirror else (configured,) if configured else source.mirrors
    target, staging = _stage(data_dir, name)
    downloads_dir = target.parent / f".{target.name}.downloads"  # kept across attempts, for resuming
    downloads_dir.mkdir(exist_ok=True)
    try:
        try:
            downloads = [download_file(mirrors, item, downloads_dir, progress) for item in source.files]
        except FetchError as exc:
            raise FetchError(
                f"{exc}; without network, place the files by hand and run `benchd data import {name} PATH`"
            ) from None
        _assemble(name, downloads, staging)
        result = verify_directory(name, staging, "real")
        if not result.ok:
            raise FetchError(f"the downloaded {name} failed verification: {result.problems[0]}")
        _swap_in(staging, target)
        shutil.rmtree(downloads_dir, ignore_errors=True)
        result.path = str(target)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def import_dataset(data_dir: Path, name: str, source: Path, *, symlink: bool = False) -> Verification:
    """Use files the user already has: verify them where they are, then copy or link them in."""
    if not source.exists():
        raise FetchError(f"{source}: no such file or directory")
    target, staging = _stage(data_dir, name)
    try:
        if source.is_file() and zipfile.is_zipfile(source) and name != "mnist":
            _assemble(name, [source], staging)
        elif source.is_dir() and name == "mnist" and not any(source.glob("*-ubyte")):
            _assemble(name, sorted(source.glob("*-ubyte.gz")), staging)
        elif source.is_dir() and name == "wikitext-2" and (source / "wiki.train.tokens").exists():
            for member, renamed in WIKITEXT_MEMBERS.items():
                shutil.copyfile(source / member, staging / renamed)
        elif source.is_dir():
            result = verify_directory(name, source, "real")
            if not result.ok:
                raise FetchError(f"{source} is not a usable {name}: {result.problems[0]}")
            if symlink:
                staging.rmdir()
                staging.symlink_to(source.resolve(), target_is_directory=True)
            else:
                staging.rmdir()
                shutil.copytree(source, staging, symlinks=False)
        else:
            raise FetchError(
                f"{source}: expected a directory (or a zip archive for wikitext-2 and lsun-classroom)"
            )
        result = verify_directory(name, staging, "real")
        if not result.ok:
            raise FetchError(f"{source} is not a usable {name}: {result.problems[0]}")
        _swap_in(staging, target)
        result.path = str(target)
        return result
    finally:
        if staging.is_symlink():
            staging.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
