#!/usr/bin/env bash
# Take docs/screenshot.png under a virtual screen (Xvfb) with Qt's xcb platform.
# As root with apt it installs what that needs (xvfb and the X libraries Qt's xcb
# plugin links); elsewhere it stops at once with the command to run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

debs=(xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1
    libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libegl1 libfontconfig1)
source scripts/debs.sh
mapfile -t missing < <(missing_debs "${debs[@]}")
if ((${#missing[@]})); then
    if can_apt; then
        echo "screenshot: installing ${missing[*]}"
        apt_install "${missing[@]}"
    else
        echo "screenshot: missing Debian packages; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

bash scripts/setup.sh
if [[ -d .venv/bin ]]; then BIN=.venv/bin; else BIN=.venv/Scripts; fi
exec xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb "$BIN/python" \
    scripts/screenshot.py "$@"
