"""`rapidqa gui` (and `rapidqa` alone): open the window, or say why it cannot."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from app.cli.common import EXIT_USAGE, check_pdf


def _display_problem() -> str:
    """Why Qt could not open a window here ('' if it probably can)."""
    if sys.platform in ("win32", "darwin"):
        return ""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return ""
    if platform.startswith("wayland"):
        return "" if os.environ.get("WAYLAND_DISPLAY") else "WAYLAND_DISPLAY is not set"
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return ""
    return "no display found (DISPLAY and WAYLAND_DISPLAY are not set)"


def cmd_gui(pdf: Path | None, quit_after: float | None, library: Path | None, err: TextIO) -> int:
    if pdf is not None:
        check_pdf(pdf)
    problem = _display_problem()
    if not problem:
        try:
            from app.gui.launch import run_gui  # imports PySide6
        except ImportError as exc:
            problem = f"Qt could not be loaded ({exc})"
    if problem:
        example = f'rapidqa ask "{pdf}"' if pdf is not None else "rapidqa ask PDF"
        print(
            f"rapidqa: cannot open the app window: {problem}.\n"
            f'Ask from the terminal instead: {example} -q "your question"',
            file=err,
        )
        return EXIT_USAGE
    return run_gui(pdf, quit_after, library)
