"""Reuse of a prefilled document prefix: an in-memory LRU and a size-capped disk cache.

Keyed by model + dtype + the prefix's token ids (which fix document, template and
tokenizer). A second question on a document that fits the window then prefills only
the question; reopening the app reads the prefix KV from disk instead of re-reading
the document. Disk entries are safetensors files written atomically (temp file +
rename), so a crash never leaves a half-written entry that would be read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

KV = tuple[Tensor, Tensor]


def prefix_key(model_key: str, dtype: torch.dtype, prefix: Sequence[int]) -> str:
    """The store's key for a prefix's KV: the model's content key (`LoadedModel.key`
    plus how it runs), the dtype and the token ids."""
    h = hashlib.sha256(f"{model_key}|{dtype}|".encode())
    h.update(torch.tensor(list(prefix), dtype=torch.int64).numpy().tobytes())
    return h.hexdigest()[:32]


def _nbytes(kv: KV) -> int:
    return sum(t.numel() * t.element_size() for t in kv)


class KVStore:
    """LRU of prefix KV snapshots in memory, backed by a capped folder on disk."""

    def __init__(
        self, folder: Path | None, memory_bytes: int = 2 << 30, disk_bytes: int = 4 << 30
    ) -> None:
        self.folder = folder
        self.memory_bytes = memory_bytes
        self.disk_bytes = disk_bytes
        self._mem: OrderedDict[str, KV] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        """Whether `key`'s snapshot is in memory or on disk (without loading it)."""
        if not isinstance(key, str):
            return False
        path = self._path(key)
        return key in self._mem or (path is not None and path.exists())

    def get(self, key: str, device: torch.device) -> KV | None:
        """The snapshot for `key` from memory, else from disk (then kept in memory)."""
        if key in self._mem:
            self._mem.move_to_end(key)
            return self._mem[key]
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            from safetensors.torch import load_file

            tensors = load_file(str(path), device=str(device))
            kv = (tensors["k"], tensors["v"])
            os.utime(path)  # recently used: last to be evicted
        except Exception:  # unreadable entry: drop it and prefill again
            path.unlink(missing_ok=True)
            return None
        self._remember(key, kv)
        return kv

    def put(self, key: str, kv: KV) -> None:
        """Keep `kv` in memory and write it to disk (atomically, within the cap)."""
        self._remember(key, kv)
        path = self._path(key)
        if path is None or path.exists() or _nbytes(kv) > self.disk_bytes:
            return
        try:
            from safetensors.torch import save_file

            assert self.folder is not None
            self.folder.mkdir(parents=True, exist_ok=True)
            self._evict_disk(self.disk_bytes - _nbytes(kv))
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            os.close(fd)
            try:
                save_file({"k": kv[0].contiguous().cpu(), "v": kv[1].contiguous().cpu()}, tmp)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError:
            pass  # a full or read-only disk only costs a prefill next time

    def clear(self, memory: bool = True, disk: bool = False) -> None:
        if memory:
            self._mem.clear()
        if disk and self.folder is not None and self.folder.exists():
            for p in self.folder.glob("*.safetensors"):
                p.unlink(missing_ok=True)

    def _remember(self, key: str, kv: KV) -> None:
        self._mem[key] = kv
        self._mem.move_to_end(key)
        while (
            len(self._mem) > 1 and sum(_nbytes(v) for v in self._mem.values()) > self.memory_bytes
        ):
            self._mem.popitem(last=False)

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.safetensors"

    def _evict_disk(self, budget: int) -> None:
        assert self.folder is not None
        for p in self.folder.glob("*.tmp"):
            p.unlink(missing_ok=True)  # leftovers of a crash
        files = sorted(self.folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and total > max(budget, 0):
            victim = files.pop(0)
            total -= victim.stat().st_size
            victim.unlink(missing_ok=True)
