#!/usr/bin/env bash
# Set up .venv if needed, then open RapidQA on the bundled sample document.
# Without a display, answer a sample question with the command-line version instead.
# Extra arguments are passed to `rapidqa` (e.g. --device cuda, --mode sd).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

if [[ -d .venv/bin ]]; then BIN=.venv/bin; else BIN=.venv/Scripts; fi
SAMPLE=resources/sample/harrow-point-handbook.pdf
QUESTION="When was the Harrow Point light first exhibited?"

case "$(uname -s)" in
    Darwin | MINGW* | MSYS* | CYGWIN*) has_display=1 ;;
    *) [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]] && has_display=1 || has_display=0 ;;
esac

if ((has_display)); then
    exec "$BIN/rapidqa" gui "$SAMPLE" "$@"
fi
echo "No display found: running the command-line version on the bundled sample instead."
echo "Question: $QUESTION"
exec "$BIN/rapidqa" ask "$SAMPLE" -q "$QUESTION" "$@"
