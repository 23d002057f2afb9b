"""Load target and drafter models: an offline model by short name (`qwen-1.5b`,
`qwen-0.5b`, `smollm2-135m`; `default` = the default target), a GGUF file, a model
folder or a hub id.

GGUF files (the offline models are GGUF too) go through `core.models.gguf`: the first
load of a file's content converts its metadata and tokenizer into the user cache (about
25 s for SmolLM2, 45 s for a Qwen model on the 2-core build machine); every load then
dequantizes the weights with torch, tensor by tensor (docs/architecture.md, "Models").
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import platformdirs
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from core.config import DEFAULT_MODEL, DEFAULT_TARGET, SAME_AS_TARGET, ModelConfig
from core.decoding.fastlm import FastWeights
from core.decoding.lm import COMPACT_ATTR
from core.decoding.qlinear import COMPACT_WEIGHT
from core.errors import ConfigError, ModelError, TokenizerMismatch
from core.models import gguf as gguf_model
from core.models.packaged import OFFLINE_MODELS, offline_gguf, offline_model
from core.models.precision import Precision, cpu_has_bf16, resolve_precision

__all__ = ["LoadedModel", "cpu_has_bf16", "load_model", "load_pair"]

StatusFn = Callable[[str], None] | None
# (model name, stage, done, total): GGUF checks, joins, conversions and weight loads
ProgressFn = Callable[[str, str, int, int], None] | None

_LEGACY_PREFIX = "smollm2-135m-instruct-"  # conversions of RapidQA 0.1 (fp32 safetensors)
_CACHE_HINT = "Free some disk space or set RAPIDQA_CACHE to a writable folder."
_SPEC_KINDS = (
    f"an offline model ({', '.join(OFFLINE_MODELS)}), a .gguf file, a model folder or a "
    "Hugging Face model id (org/name)"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# End-of-turn markers of common chat templates (ChatML, Gemma, Llama 3, Phi-3).
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>")


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM ready for inference, with what the decoding loop needs to know."""

    spec: str  # what the user asked for: "default", hub id, folder, .gguf path
    name: str  # display name
    model: PreTrainedModel  # eval mode, on `device`, requires_grad off
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    context_window: int
    eos_ids: tuple[int, ...]  # every id that ends an answer
    has_chat_template: bool
    parameters: int
    load_seconds: float
    weights: str = "dense"  # "int4" / "int8": compact storage (core/models/precision.py)
    # What the weights are, by content: the GGUF file's sha256, else a hash of the
    # parameters. Caches of model outputs (the KV store) key on it, never on `name`.
    key: str = ""

    @property
    def precision(self) -> str:
        """What the UI shows: "int4", "bfloat16", ..."""
        return Precision(self.weights, self.dtype).label  # type: ignore[arg-type]


def _status(on_status: StatusFn, message: str) -> None:
    if on_status is not None:
        on_status(message)


def resolve_device(device: str) -> torch.device:
    """`auto` = CUDA when available, else CPU; `cuda` without CUDA is a ModelError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(
                f"Device '{device}' was requested, but this PyTorch ({torch.__version__}) "
                "sees no CUDA GPU. Choose device 'auto' or 'cpu', or install a CUDA build "
                "of PyTorch and an NVIDIA driver (see README.md)."
            )
        return torch.device(device)
    raise ConfigError(f"Unknown device '{device}': use 'auto', 'cpu' or 'cuda'.")


def cache_dir() -> Path:
    """RapidQA's cache folder: $RAPIDQA_CACHE, else the platform's user cache."""
    override = os.environ.get("RAPIDQA_CACHE")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("rapidqa"))


def models_dir() -> Path:
    """Where joined offline GGUFs, converted GGUF folders and file hashes are kept:
    $RAPIDQA_MODEL_CACHE, else `models` in the cache folder. Everything in it is keyed
    by content and written atomically, so processes may share it."""
    override = os.environ.get("RAPIDQA_MODEL_CACHE")
    return Path(override).expanduser() if override else cache_dir() / "models"


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Tell transformers / huggingface_hub not to touch the network (restored after)."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _progress(on_progress: ProgressFn, name: str) -> gguf_model.ProgressFn:
    """A (stage, done, total) callback that reports for model `name`."""
    if on_progress is None:
        return None
    return lambda stage, done, total: on_progress(name, stage, done, total)


def _remove_legacy(parent: Path) -> None:
    """Drop conversions of earlier versions (SmolLM2 as 540 MB of fp32 safetensors)."""
    for old in parent.glob(_LEGACY_PREFIX + "*"):
        shutil.rmtree(old, ignore_errors=True)


def _gguf_source(spec: str, on_progress: ProgressFn) -> tuple[str, Path, str] | None:
    """(display name, GGUF file, sha256) for an offline model's name or a .gguf path;
    None for other specs."""
    offline = offline_model(DEFAULT_TARGET if spec == DEFAULT_MODEL else spec)
    if offline is not None:
        report = _progress(on_progress, offline.name)
        return offline.name, offline_gguf(offline, models_dir(), report), offline.sha256
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        path = path.resolve()
        report = _progress(on_progress, path.stem)
        try:
            sha = gguf_model.file_sha256(path, models_dir(), report)
        except OSError as err:
            raise ModelError(f"Could not read {path}: {err}") from err
        return path.stem, path, sha
    return None


def _converted(name: str, gguf: Path, sha: str, on_progress: ProgressFn) -> Path:
    """The converted folder of a GGUF's content (see `core.models.gguf`), made once."""
    folder = gguf_model.converted_dir(models_dir(), sha)
    if gguf_model.is_converted(folder):
        return folder
    try:
        models_dir().mkdir(parents=True, exist_ok=True)
        _remove_legacy(models_dir())
        with _hub_offline():
            return gguf_model.convert(gguf, folder, _progress(on_progress, name))
    except OSError as err:
        raise ModelError(
            f"Could not save the converted {name} in {models_dir()}: {err}. {_CACHE_HINT}"
        ) from err


def _load_gguf(
    name: str, gguf: Path, sha: str, prec: Precision, on_progress: ProgressFn
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    folder = _converted(name, gguf, sha, on_progress)
    with _hub_offline():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = gguf_model.load(
            folder, gguf, prec.dtype, _progress(on_progress, name), compact=prec.weights
        )
    return model, tokenizer


def _context_window(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    config = model.config.get_text_config()
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", 0)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000_000 else 2048


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """EOS ids of the generation config and the tokenizer, plus the end-of-turn token."""
    generation = getattr(model, "generation_config", None)
    ids: list[int] = []
    for value in (
        getattr(generation, "eos_token_id", None),  # int, list of ints or None
        model.config.get_text_config().eos_token_id,
        tokenizer.eos_token_id,
    ):
        values = value if isinstance(value, list | tuple) else [value]
        ids += [v for v in values if isinstance(v, int)]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in _END_OF_TURN if t in template and t in vocab]
    return tuple(dict.fromkeys(ids))  # de-duplicated, first-seen order


def place(model: PreTrainedModel, device: torch.device, dtype: torch.dtype) -> None:
    """Move and cast in place, eval mode, no gradients (transformers leaves these untyped)."""
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]  # functools.wraps typing
    model.eval()  # type: ignore[no-untyped-call]
    model.requires_grad_(False)


def wrap_loaded(
    spec: str,
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    dtype: torch.dtype,
    started: float,
    key: str = "",
) -> LoadedModel:
    """`model` placed on `device` in `dtype`, with what the engine needs to know of it."""
    place(model, device, dtype)
    return LoadedModel(
        spec=spec,
        name=name,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        context_window=_context_window(model, tokenizer),
        eos_ids=_eos_ids(model, tokenizer),
        has_chat_template=bool(tokenizer.chat_template),
        parameters=_parameters(model),
        load_seconds=time.perf_counter() - started,
        key=key or weights_key(model),
    )


def weights_key(model: PreTrainedModel) -> str:
    """sha256 of the parameters (names, dtypes, shapes, bytes): a model's content key
    when no file hash names it (a model folder, a hub model, a test model)."""
    h = hashlib.sha256()
    for name, param in model.state_dict().items():
        h.update(f"{name}|{param.dtype}|{tuple(param.shape)}|".encode())
        data = param.detach().contiguous().cpu()
        h.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return "weights:" + h.hexdigest()


def _parameters(model: PreTrainedModel) -> int:
    """Parameter count, packed weights (an empty matrix plus `COMPACT_WEIGHT`) included."""
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        packed = getattr(module, COMPACT_WEIGHT, None)
        weight: Any = getattr(module, "weight", None)
        if packed is not None and weight is not None and weight.numel() == 0:
            total += packed.shape[0] * packed.shape[1]
    return int(total)


def _load_pretrained(
    source: str, dtype: torch.dtype, *, local_only: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, attn_implementation="sdpa", local_files_only=local_only
    )
    return model, tokenizer


def _offline() -> bool:
    return any(
        os.environ.get(n, "").lower() in ("1", "true", "yes", "on")
        for n in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _load_hub(spec: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A hub id: from the local HF cache, else downloaded (unless offline)."""
    missing = (
        f"'{spec}' is not a local file or folder, and the model is not in the local "
        "Hugging Face cache"
    )
    try:
        return _load_pretrained(spec, dtype, local_only=True)
    except (ValueError, KeyError, TypeError) as err:  # in the cache, but not a causal LM
        raise ModelError(f"Could not load a causal language model '{spec}': {err}") from err
    except OSError as cached_err:  # not (completely) in the cache
        if _offline():
            raise ModelError(
                f"{missing} (offline mode). Download it first on a machine with network "
                f"(`hf download {spec}`), or give a model folder or a .gguf file."
            ) from cached_err
    try:
        return _load_pretrained(spec, dtype, local_only=False)
    except Exception as err:  # network, auth, 404: all end in the same advice
        raise ModelError(
            f"{missing}, and downloading it failed: {str(err).rstrip('.')}. Check the model "
            "id and the network, or download it first and give its folder or a .gguf file."
        ) from err


def _load_any(
    spec: str, precision: str, device: torch.device, on_status: StatusFn, on_progress: ProgressFn
) -> tuple[str, PreTrainedModel, PreTrainedTokenizerBase, Precision, str]:
    """(display name, model, tokenizer, precision, content key or "") for any kind of
    spec; see `load_model`."""
    path = Path(spec).expanduser()
    source = _gguf_source(spec, on_progress)
    if source is not None:
        name, gguf, sha = source
        prec = resolve_precision(precision, device, quantized=True)
        _status(on_status, f"Loading {name} ({prec.label})…")
        return name, *_load_gguf(name, gguf, sha, prec, on_progress), prec, f"gguf:{sha}"
    prec = resolve_precision(precision, device)
    dtype = prec.dtype
    if path.is_file():
        raise ModelError(f"{path} is a file but not a .gguf model: give a .gguf or a folder.")
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = ", ".join(sorted(p.name for p in path.glob("*.gguf")))
            hint = f" It holds GGUF files; give one of them: {ggufs}." if ggufs else ""
            raise ModelError(f"{path} is not a model folder (it has no config.json).{hint}")
        _status(on_status, f"Loading {path.name} ({dtype})…")
        try:
            with _hub_offline():
                return path.name, *_load_pretrained(str(path), dtype, local_only=True), prec, ""
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(f"Could not load a causal language model from {path}: {err}") from err
    if spec.lower().endswith(".gguf") or not _HUB_ID.match(spec):
        raise ModelError(f"No such file or folder: {path}. Give {_SPEC_KINDS}.")
    _status(on_status, f"Loading {spec} ({dtype})…")
    return spec.rsplit("/", 1)[-1], *_load_hub(spec, dtype), prec, ""


def load_model(
    spec: str,
    device: str = "auto",
    precision: str = "auto",
    on_status: StatusFn = None,
    on_progress: ProgressFn = None,
) -> LoadedModel:
    """Load `spec`: an offline model's short name (or "default"), a model folder, a
    .gguf file or a hub id (org/name), in `precision` (core/models/precision.py).

    Local specs never touch the network (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set
    while loading, and only local files are read). Compact weights (int4/int8) are
    made here, before the next model loads, so the dense copy is freed at once.
    """
    started = time.perf_counter()
    torch_device = resolve_device(device)
    resolve_precision(precision, torch_device)  # an unknown or impossible one fails first
    _large_blocks_from_the_os()
    name, model, tokenizer, prec, key = _load_any(
        spec, precision, torch_device, on_status, on_progress
    )
    loaded = wrap_loaded(spec, name, model, tokenizer, torch_device, prec.dtype, started, key)
    if prec.weights == "dense" or not FastWeights.supports(model):
        return loaded
    _status(on_status, f"Packing {name} into {prec.weights} weights…")
    setattr(model, COMPACT_ATTR, FastWeights(model, prec.weights))
    _release_freed_memory()
    return dataclasses.replace(
        loaded, weights=prec.weights, load_seconds=time.perf_counter() - started
    )


@lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc, for its allocator settings; None on other C libraries."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return libc if libc is not None and hasattr(libc, "mallopt") else None


@lru_cache(maxsize=1)
def _large_blocks_from_the_os() -> None:
    """Blocks of 4 MB and more come from mmap and go back to the OS when freed.

    glibc otherwise raises this threshold to the largest block freed so far, and a
    model load (thousands of short-lived tensors of 1-100 MB between the packed ones
    that stay) then grows the heap to 2-3x the model: the 0.5B model peaked at 3.0 GB
    resident, 1.35 GB with this (measured). M_MMAP_THRESHOLD is mallopt's -3."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 4 << 20)


def _release_freed_memory() -> None:
    """Hand the heap's free pages back to the OS after a load (glibc only)."""
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _logit_width(loaded: LoadedModel) -> int:
    fast = getattr(loaded.model, COMPACT_ATTR, None)
    if fast is not None:  # compact weights: the HF head's matrix was freed
        return int(fast.lm_head.shape[0])
    head = loaded.model.get_output_embeddings()  # type: ignore[no-untyped-call]
    if isinstance(head, torch.nn.Linear | torch.nn.Embedding):
        return int(head.weight.shape[0])
    return int(loaded.model.config.get_text_config().vocab_size)


def check_same_tokenizer(a: LoadedModel, b: LoadedModel) -> None:
    """Raise TokenizerMismatch unless token ids mean the same in both models.

    Equal vocabularies (added special tokens included) are what verification needs: a
    drafted id is scored by the target as the same token. Different EOS choices are
    fine (the loop stops on the target's `eos_ids`). Both models must also produce
    logits for every id of the vocabulary (padded, wider heads are fine).
    """
    if a.tokenizer is b.tokenizer:
        vocab = a.tokenizer.get_vocab()
    else:
        vocab, other = a.tokenizer.get_vocab(), b.tokenizer.get_vocab()
        if len(vocab) != len(other) or vocab != other:
            differ = sorted(set(vocab.items()) ^ set(other.items()), key=lambda item: item[1])
            examples = ", ".join(f"{tok!r}={i}" for tok, i in differ[:4])
            raise TokenizerMismatch(
                f"The target '{a.name}' ({len(vocab)} tokens) and the drafter '{b.name}' "
                f"({len(other)} tokens) do not share a tokenizer (e.g. {examples}). "
                "Use a drafter from the same model family, or 'same' (self-speculation)."
            )
    needed = max(vocab.values(), default=-1) + 1
    for loaded in (a, b):
        if _logit_width(loaded) < needed:
            raise TokenizerMismatch(
                f"'{loaded.name}' scores only {_logit_width(loaded)} token ids, but the shared "
                f"tokenizer of '{a.name}' and '{b.name}' has ids up to {needed - 1}."
            )


def same_model(a: str, b: str) -> bool:
    """True when specs `a` and `b` name the same model ("default" = the default target)."""

    def norm(spec: str) -> str:
        spec = DEFAULT_TARGET if spec == DEFAULT_MODEL else spec
        return spec.strip().lower() if offline_model(spec) else spec

    return norm(a) == norm(b)


def load_pair(
    cfg: ModelConfig, on_status: StatusFn = None, on_progress: ProgressFn = None
) -> tuple[LoadedModel, LoadedModel]:
    """(target, drafter); a drafter equal to the target is the same object (one copy)."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    target = load_model(cfg.target, cfg.device, cfg.precision, on_status, on_progress)
    if cfg.drafter == SAME_AS_TARGET or same_model(cfg.drafter, cfg.target):
        return target, target
    drafter = load_model(cfg.drafter, cfg.device, cfg.precision, on_status, on_progress)
    check_same_tokenizer(target, drafter)
    return target, drafter


def load_tokenizer(
    spec: str, on_status: StatusFn = None, on_progress: ProgressFn = None
) -> PreTrainedTokenizerBase:
    """The tokenizer of model `spec` (as `load_model` takes it) without its weights."""
    path = Path(spec).expanduser()
    source = _gguf_source(spec, on_progress)
    try:
        with _hub_offline():
            if source is not None:
                _status(on_status, f"Reading the tokenizer of {source[0]}…")
                folder = _converted(*source, on_progress)
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if path.is_file():
                raise ModelError(f"{path} is a file but not a .gguf model.")
            if path.is_dir():
                return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return AutoTokenizer.from_pretrained(spec, local_files_only=_offline())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(
            f"Could not load the tokenizer of '{spec}': {err}. Give {_SPEC_KINDS}."
        ) from err


def counting_tokenizer(tokenizer: PreTrainedTokenizerBase) -> Any:
    """A private copy of `tokenizer`'s fast backend (`tokenizers.Tokenizer`) that
    neither truncates nor pads: for counting tokens of any text."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelError(
            f"The tokenizer {type(tokenizer).__name__} has no fast (Rust) version; RapidQA "
            "needs one to cut documents into chunks. Choose a model with tokenizer.json."
        )
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy
