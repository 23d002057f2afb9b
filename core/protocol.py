"""What the GUI, the CLI and the benchmarks need of the engine, as one `typing.Protocol`.

`core.engine.Engine` is the implementation; the test fakes (tests/app/fake_engine.py,
the CLI's and the benchmarks' scripted engines) implement it too, and mypy checks
both against it (`tests/engine_types.py`, run by scripts/test.sh), so that the fakes
cannot drift from the engine they stand in for.

Every method that does work returns a generator of `core.events.Event`: progress and
results stream to the caller, which may stop at any event; `cancel()` (from any
thread) makes the running generator stop at its next prefill chunk or decoding round.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.config import DecodeConfig, IndexConfig, ModelConfig
from core.events import BeyondRun, ChunkRef, Event

if TYPE_CHECKING:
    from core.library.retrieve import Hit
    from core.library.schema import DocumentInfo


class EngineAPI(Protocol):
    """The engine as its users see it: models, the library, questions."""

    @property
    def models_cfg(self) -> ModelConfig:
        """The target/drafter pair and device this engine loads."""
        ...

    @property
    def index_cfg(self) -> IndexConfig:
        """The library folder, chunking and embedder."""
        ...

    @property
    def library_root(self) -> Path:
        """The library's folder (opened on first use)."""
        ...

    def load_models(self) -> Iterator[Event]:
        """Load the target and drafter once, with progress events."""
        ...

    def documents(self) -> list[DocumentInfo]:
        """The library's documents, in the order they were added."""
        ...

    def document(self, ref: str) -> DocumentInfo:
        """A library document by id or unique id prefix (DocumentError if none)."""
        ...

    def add(
        self, path: Path | str, password: str | None = None, ocr: bool | None = None
    ) -> Generator[Event, None, DocumentInfo]:
        """Add a PDF to the library; returns its entry."""
        ...

    def remove(self, ref: str) -> DocumentInfo:
        """Remove a document by id (or unique id prefix)."""
        ...

    def locate(self, ref: str, folders: Sequence[Path] = ()) -> Path | None:
        """Where a document's PDF is now."""
        ...

    def search(self, query: str, k: int = 10, doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """The `k` best passages for `query` (no language model)."""
        ...

    def ask(
        self,
        question: str,
        documents: Sequence[Path | str] = (),
        decode_cfg: DecodeConfig | None = None,
        password: str | None = None,
    ) -> Iterator[Event]:
        """Answer `question` about PDFs or library ids (none: the whole library)."""
        ...

    def evidence(
        self,
        question: str,
        doc_ids: Sequence[str],
        answer_ids: Sequence[int],
        run: BeyondRun,
        passages: Sequence[ChunkRef] = (),
        decode_cfg: DecodeConfig | None = None,
    ) -> Iterator[Event]:
        """Where the target looked while writing `run` of an answer (`Finished.answer_ids`
        to `question` about library documents `doc_ids`, asked with `decode_cfg`): re-runs
        the run's tokens through the target with attention weights over the document's
        KV cache; ends with one `Evidence` (spots strongest first; `retrieved` = inside
        `passages`, the passages the drafter read)."""
        ...

    def cancel(self) -> None:
        """Stop the running job at its next chunk or round."""
        ...

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        """Forget the documents' KV caches (the benchmarks' cold runs)."""
        ...

    def close(self) -> None:
        """Save what the library keeps in memory and close it."""
        ...
