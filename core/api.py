"""The facade `app/` imports (with core.events, core.config and core.errors).

Everything here but `Engine` is light (numpy, SQLite, PyMuPDF; the benchmark
functions take an engine and import no model code), so a window can be built and
shown from these names. `Engine` lives in `core.facade`, which imports torch and
transformers (7-8 s on a 2-core machine): it loads on first use (PEP 562), which the
app does on its worker thread after the window is shown (`app/gui.py`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.bench import SpeedReport, format_table, report_to_json, run_speed_bench
from core.bench_context import context_sweep_to_json, format_context_table, run_context_sweep
from core.bench_quality import (
    format_quality,
    mode_variants,
    pick,
    quality_to_json,
    run_quality_bench,
    sweep_variants,
    table1_variants,
)
from core.index import DocumentInfo, default_library_dir
from core.quality import load_qa_set
from core.render import PageRenderer, PdfLayout, RenderedPage
from core.retrieve import Hit

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ loads it
    from core.facade import Engine

__all__ = [  # re-exported: app/ may import only core.api (and events, config, errors)
    "DocumentInfo", "Engine", "Hit", "PageRenderer", "PdfLayout", "RenderedPage", "SpeedReport",
    "context_sweep_to_json", "default_library_dir", "format_context_table", "format_quality",
    "format_table", "load_qa_set", "mode_variants", "pick", "quality_to_json", "report_to_json",
    "run_context_sweep", "run_quality_bench", "run_speed_bench", "sweep_variants",
    "table1_variants",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """`Engine` (and the engine module's other names) from core.facade, imported on
    first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("core.facade"), name)
