"""The installer build's helpers, run for real: icons, licences, the .deb's Depends.

The PyInstaller build itself (about 15 minutes) is checked by packaging/smoke_test.sh,
not here.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _load(name: str) -> ModuleType:
    """A packaging/ script as a module (the folder is not a package)."""
    path = PACKAGING / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"rapidqa_packaging_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


collect_licenses = _load("collect_licenses")


def test_desktop_entry_is_complete() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read(PACKAGING / "linux" / "rapidqa.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"].split()[:2] == ["rapidqa", "gui"]
    assert section["Icon"] == "rapidqa"
    assert "application/pdf;" in section["MimeType"]
    assert section["Categories"].endswith(";")


def test_make_icons_renders_every_size_and_an_ico(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(
        [sys.executable, str(PACKAGING / "make_icons.py"), str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    from PySide6.QtGui import QImage

    for size in (16, 48, 256, 1024):
        image = QImage(str(tmp_path / f"rapidqa-{size}.png"))
        assert (image.width(), image.height()) == (size, size)
        assert image.pixelColor(size // 2, size // 2).alpha() > 0  # drawn, not blank
    assert (tmp_path / "rapidqa.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"  # ICO header


def _bundle(tmp_path: Path, names: list[str], libraries: list[str]) -> tuple[Path, Path]:
    bundle, work = tmp_path / "bundle", tmp_path / "work"
    bundle.mkdir()
    work.mkdir()
    (work / "bundled-names.txt").write_text("\n".join(names) + "\n")
    (work / "system-libraries.txt").write_text("\n".join(libraries) + "\n")
    return bundle, work


def test_licences_of_the_bundled_distributions(tmp_path: Path) -> None:
    zlib = Path("/lib/x86_64-linux-gnu/libz.so.1")
    libraries = [str(zlib)] if zlib.exists() else []
    bundle, work = _bundle(tmp_path, ["fitz", "pymupdf", "PySide6", "numpy", "faiss"], libraries)

    assert collect_licenses.main(["collect_licenses", str(bundle), str(work)]) == 0

    licence = (bundle / "LICENSE.txt").read_text()
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in licence
    # PyMuPDF's COPYING only names its licence: the AGPL-3.0 text goes beside it.
    pymupdf = next((bundle / "licenses").glob("pymupdf-*"))
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in (pymupdf / "AGPL-3.0.txt").read_text()
    assert next(pymupdf.glob("*.dist-info/COPYING")).is_file()
    index = (bundle / "licenses" / "README.md").read_text()
    for name in ("pymupdf", "PySide6_Essentials", "numpy", "faiss-cpu", "Python"):
        assert f"| {name} |" in index
    assert "matplotlib" not in index  # installed here, but not bundled
    # PySide6's wheel has no licence file: the LGPL-3.0 (and the GPL-3.0 it builds on).
    pyside = next((bundle / "licenses").glob("PySide6_Essentials-*"))
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (pyside / "LGPL-3.0.txt").read_text()
    assert (pyside / "GPL-3.0.txt").is_file()
    if libraries and shutil.which("dpkg"):
        assert (bundle / "licenses" / "system" / "zlib1g.copyright").is_file()


def test_licences_of_the_bundled_model_files(tmp_path: Path) -> None:
    """The Qwen pair ships as joined GGUF files, not packages: each gets its licence."""
    from core.models.packaged import QWEN_05B, QWEN_15B, bundled_name

    bundle, work = _bundle(tmp_path, ["numpy"], [])
    models = bundle / "_internal" / "models"
    models.mkdir(parents=True)
    for model in (QWEN_05B, QWEN_15B):
        (models / bundled_name(model)).write_bytes(b"stand-in")
    assert collect_licenses.main(["collect_licenses", str(bundle), str(work)]) == 0
    index = (bundle / "licenses" / "README.md").read_text()
    for model in (QWEN_05B, QWEN_15B):
        text = (bundle / "licenses" / model.name / "LICENSE.txt").read_text()
        assert "Apache License" in text and "Version 2.0" in text
        assert f"| {model.name} (Qwen team, Alibaba Cloud) |" in index
        assert bundled_name(model) in index


def test_a_bundled_distribution_without_a_licence_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "nolicence").mkdir(parents=True)
    (site / "nolicence" / "__init__.py").write_text("")
    info = site / "nolicence-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nolicence\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("nolicence\n")
    (info / "RECORD").write_text("nolicence/__init__.py,,\n")
    monkeypatch.syspath_prepend(str(site))
    bundle, work = _bundle(tmp_path, ["nolicence", "pymupdf"], [])

    assert collect_licenses.main(["collect_licenses", str(bundle), str(work)]) == 1
    assert "| nolicence | 1.0 |" in (bundle / "licenses" / "README.md").read_text()


def _faiss_bundle(tmp_path: Path, *, with_libfaiss: bool) -> Path:
    """faiss's SWIG module with the libraries its RPATH finds ($ORIGIN, faiss_cpu.libs)."""
    origin = importlib.util.find_spec("faiss").origin  # type: ignore[union-attr]
    faiss = Path(str(origin)).parent
    bundle = tmp_path / "bundle"
    (bundle / "faiss").mkdir(parents=True)
    shutil.copytree(faiss.parent / "faiss_cpu.libs", bundle / "faiss_cpu.libs")
    swig = next(faiss.glob("_swigfaiss*.so"))
    shutil.copy(swig, bundle / "faiss" / swig.name)
    if with_libfaiss:
        shutil.copy(faiss / "libfaiss.so", bundle / "faiss" / "libfaiss.so")
    return bundle


def _deb_depends(bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PACKAGING / "linux" / "deb_depends.sh"), str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )


needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg") is None or not (Path(sys.prefix) / "lib").is_dir(),
    reason="needs dpkg (Debian/Ubuntu)",
)


@needs_dpkg
def test_deb_depends_names_the_packages_of_linked_system_libraries(tmp_path: Path) -> None:
    result = _deb_depends(_faiss_bundle(tmp_path, with_libfaiss=True))

    assert result.returncode == 0, result.stderr
    depends = result.stdout.strip().split(", ")
    # libc, libstdc++ and zlib come from the system; OpenBLAS and libgomp are bundled.
    assert {"libc6", "libstdc++6", "zlib1g"} <= set(depends)
    assert not any("openblas" in package or "gomp" in package for package in depends)
    assert depends == sorted(depends)


@needs_dpkg
def test_deb_depends_refuses_a_library_missing_on_the_build_machine(tmp_path: Path) -> None:
    result = _deb_depends(_faiss_bundle(tmp_path, with_libfaiss=False))

    assert result.returncode == 1
    assert "libfaiss.so (needed by faiss/_swigfaiss" in result.stderr


def test_every_package_folder_is_in_the_wheel() -> None:
    """A package folder missing from `[tool.setuptools] packages` would be left out of a
    wheel and of the installers' build environment (an editable install hides it)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for top in ("core", "app", "bench")
        for init in (root / top).rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"
