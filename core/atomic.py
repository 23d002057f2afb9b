"""Write files and folders so that a crash never leaves half of one in place.

A file is written as a temp file beside it, flushed to disk, then renamed over the
target (`os.replace` is atomic on one file system); a folder is filled under a temp
name and renamed into place last. Readers then see the old state or the new one.
Temp names start with `TMP_PREFIX`; `remove_stale` deletes those a crash left behind.
(The `atomicwrites` package did the file half of this, but it is archived.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Open a temp file for binary writing; on success it replaces `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # as a plain new file (mkstemp makes it private)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # only still there when something failed


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically."""
    with atomic_file(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """A temp folder beside `final`, renamed to `final` when the block succeeds.

    If another process finished the same folder first, its copy is kept (the content
    is the same: callers key folders by content) and ours is discarded.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # as a plain new folder (mkdtemp makes it private)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename


def remove_stale(parent: Path, older_than_s: float = 3600.0) -> None:
    """Delete temp files and folders in `parent` that a crashed writer left behind."""
    now = time.time()
    for leftover in parent.glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime < older_than_s:
                continue  # may still be written by a running process
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()
