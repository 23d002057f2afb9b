"""The facade `app/` imports (with core.events, core.config and core.errors).

Everything here but `Engine` is light (numpy, SQLite, PyMuPDF), so a window can be built and
shown from these names. `Engine` lives in `core.engine`, which imports torch and
transformers (7-8 s on a 2-core machine): it loads on first use (PEP 562), which the
app does on its worker thread after the window is shown (`app/gui/launch.py`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.library.retrieve import Hit
from core.library.schema import DocumentInfo, default_library_dir
from core.pdf.render import PageRenderer, PdfLayout, RenderedPage
from core.protocol import EngineAPI

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ loads it
    from core.engine import Engine

__all__ = [  # re-exported: app/ may import only core.api (and events, config, errors)
    "DocumentInfo", "Engine", "EngineAPI", "Hit", "PageRenderer", "PdfLayout", "RenderedPage",
    "default_library_dir",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """`Engine` (and the engine module's other names) from core.engine, imported on
    first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("core.engine"), name)
