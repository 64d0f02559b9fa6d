"""The store's files on disk: the write-ahead log checked before SQLite sees it, and read-only opening.

SQLite treats a WAL whose header is damaged as empty and, when the last
connection closes, deletes it: every run recorded since the last checkpoint
is gone, silently, and a read-only `benchd runs` was enough to do it. So the
header (magic, version, page size and its checksum, as sqlite.org's file
format describes it) is checked before any connection is opened, and a
damaged one stops benchd with the file named.

A read-only command must not change a byte in the data directory, not even
the shared-memory index: it opens the store with `mode=ro&readonly_shm=1`
where the index exists, and otherwise reads a private copy of the database
and its log.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path

WAL_HEADER_BYTES = 32
WAL_MAGIC_LITTLE_ENDIAN = 0x377F0682  # frame checksums in little-endian words
WAL_MAGIC_BIG_ENDIAN = 0x377F0683
WAL_FORMAT_VERSION = 3007000


class DamagedLogError(Exception):
    """The write-ahead log beside the store cannot be read: its header is not one SQLite wrote."""


def wal_path(store: Path) -> Path:
    return store.with_name(store.name + "-wal")


def shm_path(store: Path) -> Path:
    return store.with_name(store.name + "-shm")


def _checksum(data: bytes, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum over 8-byte steps of two 32-bit words."""
    first = second = 0
    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    for index in range(0, len(words), 2):
        first = (first + words[index] + second) & 0xFFFFFFFF
        second = (second + words[index + 1] + first) & 0xFFFFFFFF
    return first, second


def wal_problem(header: bytes) -> str | None:
    """Why a WAL header is not one SQLite wrote, or None. An empty log (a fresh or reset one) is fine."""
    if not header:
        return None
    if len(header) < WAL_HEADER_BYTES:
        return f"its header is cut short ({len(header)} of {WAL_HEADER_BYTES} bytes)"
    magic, version, page_size, _sequence, _salt1, _salt2, sum1, sum2 = struct.unpack(">8I", header[:32])
    if magic not in (WAL_MAGIC_LITTLE_ENDIAN, WAL_MAGIC_BIG_ENDIAN):
        return "its header has no SQLite WAL magic number"
    if version != WAL_FORMAT_VERSION:
        return f"its header names format {version}, not {WAL_FORMAT_VERSION}"
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return f"its header names page size {page_size}"
    if _checksum(header[:24], magic == WAL_MAGIC_BIG_ENDIAN) != (sum1, sum2):
        return "its header checksum does not match"
    return None


def check_wal(store: Path) -> None:
    """DamagedLogError when the store's write-ahead log exists and its header is damaged."""
    try:
        with open(wal_path(store), "rb") as handle:
            header = handle.read(WAL_HEADER_BYTES)
    except FileNotFoundError:
        return
    problem = wal_problem(header)
    if problem is not None:
        raise DamagedLogError(f"its write-ahead log {wal_path(store).name} is damaged: {problem}")


def open_read_only(store: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A connection that cannot change the store's files, and the private copy to remove after, if any."""
    if shm_path(store).exists() or not wal_path(store).exists():
        # readonly_shm: the index is read, never rebuilt; without a log there is nothing to index.
        uri = f"{store.resolve().as_uri()}?mode=ro&readonly_shm=1"
        try:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection, None
        except sqlite3.OperationalError:
            pass  # an index that needs rebuilding: read a copy instead
    copy = Path(tempfile.mkdtemp(prefix="benchd-store-"))
    for source in (store, wal_path(store)):
        if source.exists():
            shutil.copyfile(source, copy / source.name)
    connection = sqlite3.connect(copy / store.name, check_same_thread=False, isolation_level=None)
    return connection, copy
