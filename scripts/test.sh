#!/usr/bin/env bash
# Run every check CI runs: import contracts, ruff, mypy (core, bench, the fakes), then pytest.
#
#   ./scripts/test.sh                 full suite, slow tests included
#   ./scripts/test.sh -m "not slow"   quick run (no real models, no long PDFs)
#   ./scripts/test.sh tests/core -x   any pytest arguments are passed through
#
# As root with apt available it also installs the Debian packages some tests use:
# r-doc-pdf (real long PDFs), gnuplot-doc (the gnuplot manual of the QA set),
# texlive-latex-{base,recommended}-doc (the corpus of varied real PDFs), tesseract-ocr (OCR of scanned pages) and xvfb. Elsewhere it prints a note; the tests that
# need those PDFs are skipped when they are absent. RAPIDQA_NO_APT=1 skips this step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

if [[ -d .venv/bin ]]; then BIN=.venv/bin; else BIN=.venv/Scripts; fi

say() { printf 'test: %s\n' "$*"; }

# Debian packages for the tests (optional).
debs=(r-doc-pdf gnuplot-doc texlive-latex-base-doc texlive-latex-recommended-doc tesseract-ocr
    tesseract-ocr-eng xvfb)
source scripts/debs.sh
mapfile -t missing < <(missing_debs "${debs[@]}")
if ((${#missing[@]})); then
    if can_apt; then
        say "installing Debian packages: ${missing[*]}"
        if ! apt_install "${missing[@]}"; then
            say "note: could not install ${missing[*]}; tests that need them will be skipped"
        fi
    else
        say "note: ${missing[*]} not installed (needs root and apt); tests that need them will be skipped"
    fi
fi

# Qt without a display.
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"

say "lint-imports"
"$BIN/lint-imports"
say "ruff check ."
"$BIN/ruff" check .
# mypy (strict): the engine, the benchmark package's modules (not its scripts) and the
# fakes' conformance to the engine Protocol (tests/engine_types.py).
MYPY_PATHS=(core tests/engine_types.py bench/speed.py bench/context.py bench/quality.py
    bench/scoring.py bench/peers.py)
say "mypy ${MYPY_PATHS[*]}"
"$BIN/mypy" "${MYPY_PATHS[@]}"
say "pytest $*"
"$BIN/pytest" "$@"
