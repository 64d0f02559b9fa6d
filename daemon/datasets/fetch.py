"""Fetching the real datasets from their public sources, and importing files a user has.

Every download resumes where an interrupted one stopped (HTTP range), is
capped in size, and is checked against the digest its publisher (or
torchvision) records before anything is extracted. Extraction refuses
members that would land outside the target. The new dataset is assembled
in a hidden directory beside the target, verified, and only then swapped in,
so a failed or interrupted fetch leaves the previous state as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from benchd.datasets import layout
from benchd.datasets.formats import get_format, names
from benchd.datasets.sources import CHUNK, FetchError, RemoteFile, Source, extract_zip, refuse_links_out
from benchd.datasets.verify import Verification, verify_directory

ProgressCallback = Callable[[str, int, int | None], None]  # file name, bytes so far, total
TIMEOUT_SECONDS = 30.0
ATTEMPTS = 4


# Where each dataset is published (its module's SOURCE); a test may swap in a local server's.
SOURCES: dict[str, Source] = {name: get_format(name).SOURCE for name in names()}


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
    url: str, partial: Path, item: RemoteFile, progress: ProgressCallback, errors: dict[str, str]
) -> bool:
    """Try one URL, resuming after dropped connections for as long as each attempt makes progress."""
    for _attempt in range(ATTEMPTS):
        before = partial.stat().st_size if partial.exists() else 0
        try:
            _download(url, partial, item, progress)
            return True
        except urllib.error.HTTPError as exc:
            errors[url] = f"HTTP {exc.code} {exc.reason}"
            partial.unlink(missing_ok=True)
            return False  # a 404 will not get better by asking again
        except (urllib.error.URLError, OSError) as exc:
            errors[url] = str(getattr(exc, "reason", exc))
            if not partial.exists() or partial.stat().st_size <= before:
                return False
    return False


def download_file(
    mirrors: tuple[str, ...], item: RemoteFile, folder: Path, progress: ProgressCallback
) -> Path:
    """Download one file, trying each mirror in turn, and check its digest."""
    partial = folder / f"{item.name}.part"
    errors: dict[str, str] = {}  # each URL tried, and why its last attempt failed
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
    tried = "; ".join(f"{url}: {reason}" for url, reason in errors.items()) or "no mirror configured"
    raise FetchError(f"cannot download {item.name} from any of {len(mirrors)} mirror(s) ({tried})")


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
    missing_only: bool = False,
) -> Verification | None:
    """Download, verify and swap in the real dataset, under the dataset's lock (pods of a DaemonSet share a
    node's data directory). With `missing_only`, a real dataset already in place is kept: None."""
    with layout.exclusive(data_dir, get_format(name)):
        present = layout.describe(data_dir, get_format(name))
        if missing_only and present is not None and present.kind == "real":
            return None
        return _fetch(data_dir, name, mirror, progress)


def _fetch(data_dir: Path, name: str, mirror: str | None, progress: ProgressCallback) -> Verification:
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
        get_format(name).assemble(downloads, staging)
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
    if source.is_dir():
        refuse_links_out(source)
    target, staging = _stage(data_dir, name)
    try:
        if get_format(name).stage_import(source, staging):
            pass  # the dataset as published (an archive, compressed files), assembled
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


__all__ = [
    "SOURCES",
    "FetchError",
    "RemoteFile",
    "Source",
    "extract_zip",
    "fetch",
    "import_dataset",
    "mirror_env",
    "refuse_links_out",
]
