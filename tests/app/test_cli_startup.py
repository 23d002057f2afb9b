"""`rapidqa --help` and a usage error answer at once: the command's modules import no
numeric or model code (numpy, FAISS, PyMuPDF, torch) until a command needs the engine."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "faiss", "fitz", "pymupdf", "torch", "transformers", "PySide6")


def test_the_command_imports_nothing_heavy_at_start() -> None:
    probe = f"import sys, app.cli.main; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out
