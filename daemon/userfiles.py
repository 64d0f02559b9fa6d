"""Reading a file a user named (a bundle, a config, a token file): a regular file, and only so much of it.

`stat` cannot be trusted for the size: /dev/zero, /proc files and FIFOs report
0 or nothing and then never end. So the file is opened without blocking (a
FIFO with no writer would hang the open), checked to be a regular file on the
descriptor itself (no race with a swap of the path), and read up to one byte
past the cap: what is actually read decides, never what the file claims.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

KIB = 1024
MIB = 1024 * KIB


class UserFileError(Exception):
    """A named file that cannot be used: missing, not a regular file, too large, unreadable. The message
    names the file and why, in one line."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path, what: str = "file") -> BinaryIO:
    """The file opened for reading, if it is a regular file (checked on the open descriptor)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UserFileError(f"{what} {path}: {exc.strerror or exc}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise UserFileError(f"{what} {path}: {_kind(mode)}, not a regular file")
    return os.fdopen(descriptor, "rb")


def read_bytes(path: Path, limit: int, what: str = "file") -> bytes:
    """At most `limit` bytes of a regular file; UserFileError when it is larger, or not a regular file."""
    with open_regular(path, what) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UserFileError(f"{what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UserFileError(f"{what} {path}: larger than {_size(limit)}, more than a {what} can be")
    return data


def read_text(path: Path, limit: int, what: str = "file") -> str:
    """A regular file's UTF-8 text, at most `limit` bytes of it."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserFileError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"
