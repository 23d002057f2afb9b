"""The facade `app/` imports (with core.events, core.config and core.errors).

The names a window needs before it is shown (document rows, page rendering, the
library folder) are imported here directly and are light: numpy, SQLite, PyMuPDF.
`Engine` and the benchmark functions live in `core.facade`, which imports torch and
transformers (7-8 s on a 2-core machine); they load on first use, so the app shows
its window first and pays for torch on its worker thread (`app/gui.py`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.index import DocumentInfo, default_library_dir
from core.render import PageRenderer, PdfLayout, RenderedPage

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ loads them
    from core.facade import (
        Engine,
        Hit,
        SpeedReport,
        context_sweep_to_json,
        format_context_table,
        format_quality,
        format_table,
        load_qa_set,
        mode_variants,
        pick,
        quality_to_json,
        report_to_json,
        run_context_sweep,
        run_quality_bench,
        run_speed_bench,
        sweep_variants,
    )

__all__ = [
    "DocumentInfo", "Engine", "Hit", "PageRenderer", "PdfLayout", "RenderedPage", "SpeedReport",
    "context_sweep_to_json", "default_library_dir", "format_context_table", "format_quality",
    "format_table", "load_qa_set", "mode_variants", "pick", "quality_to_json", "report_to_json",
    "run_context_sweep", "run_quality_bench", "run_speed_bench", "sweep_variants",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """Everything else comes from core.facade, imported on first use (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("core.facade"), name)
