#!/usr/bin/env bash
# Take docs/screenshot.png under a virtual screen (Debian: apt-get install xvfb).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if [[ -d .venv/bin ]]; then BIN=.venv/bin; else BIN=.venv/Scripts; fi
exec xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb "$BIN/python" \
    scripts/screenshot.py "$@"
