"""The vector index's file format, written atomically and checked when read.

Layout: magic `RQVIDX1\n`, a 4-byte header length, a JSON header (format, dim, kind,
count, settings, the FAISS version), the FAISS index blob, a trailer of the blob's
length and CRC-32, and the end mark `RQVIEND\n`. A write goes to a temp file in the
same folder, is fsynced and renamed over the old file (then the folder is fsynced),
so a crash leaves the old file or the new one, never half of one; a read checks the
magic, the lengths and the CRC before FAISS parses a byte of the blob.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import faiss as _faiss

from core.errors import VectorIndexError

# Untyped on purpose: FAISS's stubs lack PyCallbackIOReader/Writer.
faiss: Any = _faiss

MAGIC = b"RQVIDX1\n"
END = b"RQVIEND\n"
FORMAT = 1
TRAILER = struct.Struct("<QI")  # FAISS length, CRC-32
HEADER_LEN = struct.Struct("<I")
MAX_HEADER = 1 << 20

_T = TypeVar("_T")


def write_index_file(path: Path, header: dict[str, Any], index: Any) -> None:
    """Write `header` and the FAISS `index` to `path` atomically."""
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + HEADER_LEN.pack(len(head)) + head)
            writer = _CrcWriter(f)
            faiss.write_index(index, faiss.PyCallbackIOWriter(writer))
            f.write(TRAILER.pack(writer.size, writer.crc) + END)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_index_file(
    path: Path,
    check: Callable[[dict[str, Any]], _T],
    damaged: Callable[[str], VectorIndexError],
) -> tuple[dict[str, Any], Any, _T]:
    """(header, FAISS index, `check(header)`) of the file at `path`. `check` validates
    the header (raising VectorIndexError) before the blob is parsed; `damaged(why)`
    makes the error for a file that is not whole."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        fixed = len(MAGIC) + HEADER_LEN.size + TRAILER.size + len(END)
        if size < fixed or f.read(len(MAGIC)) != MAGIC:
            raise damaged("not a RapidQA vector index")
        (head_len,) = HEADER_LEN.unpack(f.read(HEADER_LEN.size))
        if head_len > min(MAX_HEADER, size - fixed):
            raise damaged("bad header length")
        try:
            header = json.loads(f.read(head_len).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise damaged("unreadable header") from e
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise damaged("unknown format")
        start = len(MAGIC) + HEADER_LEN.size + head_len
        f.seek(size - TRAILER.size - len(END))
        blob_len, crc = TRAILER.unpack(f.read(TRAILER.size))
        if f.read(len(END)) != END:
            raise damaged("truncated")
        if start + blob_len + TRAILER.size + len(END) != size:
            raise damaged("truncated or extended")
        f.seek(start)
        got = 0
        for block in _blocks(f, blob_len):
            got = zlib.crc32(block, got)
        if got != crc:
            raise damaged("checksum mismatch")
        checked = check(header)
        f.seek(start)
        reader = _LimitedReader(f, blob_len)
        index: Any = faiss.read_index(faiss.PyCallbackIOReader(reader))  # downcast already
    return header, index, checked


class _CrcWriter:
    """faiss.PyCallbackIOWriter callback: write to a file, keeping length and CRC-32."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = 0
        self.crc = 0

    def __call__(self, data: bytes) -> None:
        self.f.write(data)
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)


class _LimitedReader:
    """faiss.PyCallbackIOReader callback: read at most `limit` bytes of a file."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self.f = f
        self.left = limit

    def __call__(self, n: int) -> bytes:
        data = self.f.read(min(n, self.left))
        self.left -= len(data)
        return data


def _blocks(f: BinaryIO, length: int, block: int = 1 << 22) -> Iterator[bytes]:
    while length > 0:
        data = f.read(min(block, length))
        if not data:
            raise VectorIndexError("The vector index file ended early (truncated).")
        length -= len(data)
        yield data


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
