"""How a command gets its engine (`make_engine`: the one place that builds
`core.api.Engine`; tests replace it with a fake) and checks a PDF argument."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import IndexConfig, ModelConfig, default_drafter
from core.errors import DocumentError

if TYPE_CHECKING:  # core.api imports the library (numpy, FAISS): not at start-up
    from core.api import EngineAPI

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
ISSUES_HINT = "This is a bug in RapidQA; please report it with the command you ran"


class UsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def make_engine(models: ModelConfig, index: IndexConfig) -> EngineAPI:
    """Build the engine (tests replace this with a fake)."""
    from core.api import Engine  # imports torch: only when a command needs it

    return Engine(models, index)


def engine_for(args: argparse.Namespace) -> EngineAPI:
    """The engine for a command's model and library options (defaults where absent)."""
    target = getattr(args, "target", ModelConfig().target)
    models = ModelConfig(
        target=target,
        drafter=getattr(args, "drafter", None) or default_drafter(target),
        device=getattr(args, "device", ModelConfig().device),
        precision=getattr(args, "precision", ModelConfig().precision),
        fast_prefill=False if getattr(args, "exact_prefill", False) else None,
    )
    index = IndexConfig(
        library=getattr(args, "library", None),
        embedder=getattr(args, "embedder", IndexConfig().embedder),
        hybrid=not getattr(args, "dense", False),
    )
    return make_engine(models, index)


def check_pdf(pdf: Path) -> None:
    """Raise `DocumentError` unless `pdf` is an existing file."""
    if not pdf.exists():
        raise DocumentError(f"No such file: {pdf}. Check the path and try again.")
    if not pdf.is_file():
        raise DocumentError(f"{pdf} is not a file: give the path of a PDF.")
