#!/usr/bin/env bash
# Check the built .deb the way a user meets it, on this machine, without installing it:
#
#   packaging/smoke_test.sh [dist/rapidqa_VERSION_ARCH.deb]
#
# 1. unpacks the .deb into a scratch root (dpkg -x) and checks its layout (launcher,
#    desktop entry, icons, licences) and its Depends against this machine;
# 2. with a fresh HOME, a PATH without .venv and HF_HUB_OFFLINE=1, runs the frozen
#    CLI through the /usr/bin launcher on the bundled sample (`ask ... --json`; the
#    answer must be non-empty): this first start converts the default model;
# 3. asks again (the warm start: the converted model is cached);
# 4. starts the frozen GUI under Xvfb with the xcb platform for a few seconds
#    (`gui --quit-after`), twice, and checks that it exits cleanly without Qt plugin
#    errors.
# Prints the sizes and times, and writes them to build/smoke/report.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
say() { printf 'smoke: %s\n' "$*"; }
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }

deb=${1:-$(ls -t dist/rapidqa_*.deb 2>/dev/null | head -n 1 || true)}
[[ -n "$deb" && -f "$deb" ]] || fail "no .deb given and none in dist/ (run packaging/build_linux.sh)"
command -v xvfb-run >/dev/null || fail "xvfb-run is needed for the GUI check (Debian: apt-get install xvfb)"

SCRATCH=$ROOT/build/smoke
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH/home" "$SCRATCH/tmp"
FS=$SCRATCH/root
say "unpacking $deb"
dpkg-deb -x "$deb" "$FS"
dpkg-deb -f "$deb" Package Version Depends >"$SCRATCH/control.txt"

# 1. Layout.
for path in opt/rapidqa/rapidqa opt/rapidqa/LICENSE.txt opt/rapidqa/licenses/README.md \
    usr/share/applications/rapidqa.desktop usr/share/icons/hicolor/scalable/apps/rapidqa.svg \
    usr/share/icons/hicolor/256x256/apps/rapidqa.png usr/share/doc/rapidqa/copyright; do
    [[ -e "$FS/$path" ]] || fail "/$path is missing from the package"
done
[[ "$(readlink "$FS/usr/bin/rapidqa")" == ../../opt/rapidqa/rapidqa ]] ||
    fail "/usr/bin/rapidqa is not a link to /opt/rapidqa/rapidqa"
grep -q "GNU AFFERO GENERAL PUBLIC LICENSE" "$FS/opt/rapidqa/LICENSE.txt" ||
    fail "LICENSE.txt does not carry the AGPL-3.0 text"
ls "$FS"/opt/rapidqa/licenses/pymupdf-*/AGPL-3.0.txt >/dev/null ||
    fail "PyMuPDF's licence is not in licenses/"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$FS/usr/share/applications/rapidqa.desktop" ||
        fail "the desktop entry does not validate"
fi
depends=$(dpkg-deb -f "$deb" Depends)
source scripts/debs.sh
mapfile -t unmet < <(missing_debs ${depends//,/ })
((${#unmet[@]} == 0)) || fail "Depends not installed here: ${unmet[*]} (apt-get install them first)"
say "layout ok; Depends: $depends"

# A user's environment: fresh HOME, no virtual environment, no network for models.
clean_env=(env -i "HOME=$SCRATCH/home" "PATH=$FS/usr/bin:/usr/bin:/bin" "LANG=C.UTF-8"
    "TMPDIR=$SCRATCH/tmp" "HF_HUB_OFFLINE=1" "TRANSFORMERS_OFFLINE=1")
SAMPLE=$FS/opt/rapidqa/_internal/resources/sample/harrow-point-handbook.pdf
[[ -f "$SAMPLE" ]] || fail "the bundled sample PDF is missing ($SAMPLE)"
QUESTION="When was the Harrow Point light first exhibited?"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

ask() { # $1: label
    local t0 out
    t0=$(now)
    out=$SCRATCH/ask-$1.json
    if ! "${clean_env[@]}" rapidqa ask "$SAMPLE" -q "$QUESTION" --max-new-tokens 32 --json \
        >"$out" 2>"$SCRATCH/ask-$1.log"; then
        tail -n 20 "$SCRATCH/ask-$1.log" >&2
        fail "the frozen CLI failed ($1 start); log: $SCRATCH/ask-$1.log"
    fi
    ASK_SECONDS=$(elapsed "$t0")
    ANSWER=$(/usr/bin/python3 -c 'import json, sys
data = json.load(open(sys.argv[1]))
print(data["answer"].strip())' "$out") || fail "the CLI's --json output is not the expected JSON ($out)"
    [[ -n "$ANSWER" ]] || fail "the answer is empty ($out)"
}

# 2. and 3. The CLI, first start (model conversion) and warm start.
say "frozen CLI, first start (converts the default model)"
ask first
first_ask=$ASK_SECONDS
say "  answer: $ANSWER  ($first_ask s)"
[[ -d "$SCRATCH/home/.cache/rapidqa/models" ]] || fail "the converted model is not in the fresh HOME's cache"
say "frozen CLI, warm start"
ask warm
warm_ask=$ASK_SECONDS
say "  answer: $ANSWER  ($warm_ask s)"

# 4. The GUI under Xvfb with the xcb platform (what a desktop uses), twice.
gui() { # $1: label
    local t0 log=$SCRATCH/gui-$1.log
    t0=$(now)
    if ! "${clean_env[@]}" QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        rapidqa gui --quit-after 4 >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        fail "the frozen GUI did not exit cleanly ($1); log: $log"
    fi
    GUI_SECONDS=$(elapsed "$t0")
    if grep -Ei "could not (load|find) the Qt platform plugin|Traceback|Segmentation" "$log"; then
        fail "the frozen GUI reported errors ($1); log: $log"
    fi
}
say "frozen GUI under Xvfb (xcb), --quit-after 4"
gui first
first_gui=$GUI_SECONDS
gui warm
warm_gui=$GUI_SECONDS

megabytes() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; } # MB = 10^6 bytes
deb_mb=$(megabytes "$(stat -c %s "$deb")")
tar=$(ls -t dist/rapidqa-*-linux-*.tar.gz 2>/dev/null | head -n 1 || true)
tar_mb=$([[ -n "$tar" ]] && megabytes "$(stat -c %s "$tar")" || echo "-")
installed_mb=$(megabytes "$(($(du -sk "$FS" | cut -f1) * 1024))")
{
    echo "package:            $(basename "$deb")"
    echo ".deb size:          $deb_mb MB"
    echo ".tar.gz size:       $tar_mb MB"
    echo "installed size:     $installed_mb MB"
    echo "CLI ask, first:     $first_ask s (includes converting the default model)"
    echo "CLI ask, warm:      $warm_ask s"
    echo "GUI, first start:   $first_gui s (window shown, 4 s open, closed; Xvfb start included)"
    echo "GUI, warm start:    $warm_gui s"
} | tee "$SCRATCH/report.txt"
say "passed"
