"""The document-prefix KV store: round trips, LRU bound, disk cap, bad entries."""

from __future__ import annotations

from pathlib import Path

import torch

from core.models.kvstore import KVStore, prefix_key


def _kv(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, n, 4, generator=g), torch.randn(2, 1, n, 4, generator=g)


def test_round_trip_memory_and_disk(tmp_path: Path) -> None:
    store = KVStore(tmp_path)
    key = prefix_key("m", torch.float32, [1, 2, 3])
    kv = _kv(5)
    store.put(key, kv)
    got = store.get(key, torch.device("cpu"))
    assert got is not None and torch.equal(got[0], kv[0]) and torch.equal(got[1], kv[1])
    fresh = KVStore(tmp_path)  # a new process: from disk
    got = fresh.get(key, torch.device("cpu"))
    assert got is not None and torch.equal(got[0], kv[0]) and torch.equal(got[1], kv[1])
    assert not list(tmp_path.glob("*.tmp"))


def test_keys_depend_on_model_dtype_and_tokens() -> None:
    keys = {
        prefix_key("m", torch.float32, [1, 2, 3]),
        prefix_key("m", torch.bfloat16, [1, 2, 3]),
        prefix_key("other", torch.float32, [1, 2, 3]),
        prefix_key("m", torch.float32, [1, 2, 4]),
    }
    assert len(keys) == 4


def test_memory_lru_and_disk_cap(tmp_path: Path) -> None:
    one = 2 * 2 * 1 * 100 * 4 * 4  # bytes of one _kv(100)
    store = KVStore(tmp_path, memory_bytes=2 * one, disk_bytes=2 * one + 2048)
    keys = [prefix_key("m", torch.float32, [i]) for i in range(4)]
    for i, k in enumerate(keys):
        store.put(k, _kv(100, i))
    assert len(store._mem) == 2  # the oldest two were dropped from memory
    on_disk = list(tmp_path.glob("*.safetensors"))
    assert 1 <= len(on_disk) <= 2  # the disk cap holds
    assert store.get(keys[-1], torch.device("cpu")) is not None


def test_corrupt_entry_is_dropped(tmp_path: Path) -> None:
    key = prefix_key("m", torch.float32, [9])
    (tmp_path / f"{key}.safetensors").write_bytes(b"not a safetensors file")
    store = KVStore(tmp_path)
    assert store.get(key, torch.device("cpu")) is None
    assert not (tmp_path / f"{key}.safetensors").exists()


def test_unwritable_folder_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = KVStore(blocker / "kv")  # cannot create a folder under a file
    key = prefix_key("m", torch.float32, [1])
    store.put(key, _kv(3))
    assert store.get(key, torch.device("cpu")) is not None  # memory still serves it
