"""GGUF models: converted once per file content, then loaded by streaming dequantization.

Reading a GGUF through transformers parses its metadata three times (config, tokenizer,
tensors: ~12 s each for a 151,936-token vocabulary on the 2-core build machine) and
dequantizes every tensor with numpy into fp32 before casting (~100 s and 13.5 GB peak
for Qwen2.5-Coder-1.5B). Here the work is split:

- **Conversion, once per file content** (`convert`): the model's config, its tokenizer
  and a table of its tensors (GGUF name, type, shape, byte range) go into
  `<cache>/models/gguf-v1-<sha256 prefix>/`, written under a temp name and renamed into
  place last. The key is the file's sha256, not its name or path.
- **Load** (`load`): the model is built with empty weights, then each tensor's bytes
  are read from the GGUF, dequantized by torch (`core.models.gguf_quants`) straight into the
  model's dtype and assigned, a tensor per core at a time: peak memory is the model
  plus those tensors, and nothing of the GGUF is copied or expanded on disk.

`file_sha256` remembers each file's hash by (path, size, mtime), so a second load does
not read a gigabyte again just to find its cache folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_dir, remove_stale, write_bytes
from core.decoding.qlinear import COMPACT_WEIGHT, Weight, WeightKind, head_kind, quantize
from core.errors import ModelError
from core.models.gguf_quants import dequantize_tensor

ProgressFn = Callable[[str, int, int], None] | None  # (stage, done, total)
FORMAT = "gguf-v1"  # bump when the folder's content changes meaning
TABLE = "rapidqa-gguf.json"  # written last: its presence marks a complete folder
_HASHES = "hashes.json"
_HASH_BLOCK = 16 << 20


def _report(on_progress: ProgressFn, stage: str, done: int, total: int) -> None:
    if on_progress is not None:
        on_progress(stage, done, total)


def _memo_path(cache: Path) -> Path:
    return cache / _HASHES


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def file_sha256(path: Path, cache: Path, on_progress: ProgressFn = None) -> str:
    """sha256 of `path`'s bytes; remembered in `cache` by path, size, mtime and inode."""
    path = path.resolve()
    memo_file = _memo_path(cache)
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    stat = _stat_key(path)
    known = memo.get(str(path))
    if isinstance(known, dict) and all(known.get(k) == v for k, v in stat.items()):
        return str(known["sha256"])
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
            done += len(block)
            _report(on_progress, "checking", done, stat["size"])
    sha = digest.hexdigest()
    memo[str(path)] = {**stat, "sha256": sha}
    try:
        write_bytes(memo_file, json.dumps(memo, indent=1).encode())
    except OSError:
        pass  # the memo only saves time
    return sha


def converted_dir(cache: Path, sha256: str) -> Path:
    return cache / f"{FORMAT}-{sha256[:16]}"


def is_converted(folder: Path) -> bool:
    return (folder / TABLE).is_file()


def _reader(gguf: Path) -> Any:
    from gguf import GGUFReader

    try:
        return GGUFReader(gguf)
    except (ValueError, OSError, IndexError, KeyError) as err:
        raise ModelError(
            f"{gguf} is not a readable GGUF model file ({err}). It may be truncated or "
            "corrupt: download or reinstall it."
        ) from err


def _meta_model(config: Any, dtype: torch.dtype | None = None) -> Any:
    """The model of `config` with weights on the meta device (buffers real)."""
    from accelerate import init_empty_weights  # type: ignore[import-untyped]
    from transformers import AutoModelForCausalLM

    with init_empty_weights(include_buffers=False):
        return AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, dtype=dtype or torch.float32, attn_implementation="sdpa"
        )


def _processor(arch: str, gguf_config: dict[str, Any]) -> Any:
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    cls = TENSOR_PROCESSORS.get(arch, TensorProcessor)
    return cls(config=gguf_config)  # type: ignore[no-untyped-call]


def _gguf_config(gguf: Path) -> tuple[str, dict[str, Any]]:
    """(architecture, transformers config dict) from the GGUF's metadata."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    try:
        parsed = load_gguf_checkpoint(str(gguf), return_tensors=False)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, NotImplementedError) as err:
        raise ModelError(
            f"RapidQA cannot run {gguf.name}: {err}. It reads GGUF files of the causal "
            "language models transformers supports (Llama, Mistral, Qwen2, Qwen3, Gemma, "
            "Phi-3 ...)."
        ) from err
    config = dict(parsed["config"])
    return str(config.get("model_type", "")), config


def _tensor_table(gguf: Path) -> list[list[Any]]:
    """[GGUF name, type, shape (torch order), byte offset, byte count] of each tensor."""
    reader = _reader(gguf)
    size = gguf.stat().st_size
    tensors = []
    for t in reader.tensors:
        offset, nbytes = int(t.data_offset), int(t.n_bytes)
        if offset + nbytes > size:
            raise ModelError(
                f"{gguf} is truncated: tensor {t.name} ends at byte {offset + nbytes}, "
                f"the file has {size}. Download or reinstall it."
            )
        shape = [int(x) for x in reversed(t.shape.tolist())]  # GGUF lists dims innermost first
        tensors.append([t.name, int(t.tensor_type), shape, offset, nbytes])
    return tensors


def convert(gguf: Path, folder: Path, on_progress: ProgressFn = None) -> Path:
    """Write `folder` (see the module docstring) for `gguf`; atomic."""
    from transformers import AutoConfig, AutoTokenizer

    remove_stale(folder.parent)
    _report(on_progress, "reading the tensor table", 0, 3)
    tensors = _tensor_table(gguf)  # first: a broken file fails here, as such
    _report(on_progress, "reading metadata", 1, 3)
    arch, gguf_config = _gguf_config(gguf)
    skip = ("model_type", "_model_name_or_path")
    settings = {k: v for k, v in gguf_config.items() if k not in skip}
    config = AutoConfig.for_model(arch, **settings)
    try:
        model = _meta_model(config)
    except (ValueError, KeyError) as err:
        raise ModelError(
            f"{gguf.name} holds a '{arch}' model, which is not a causal language model "
            f"RapidQA can run: {err}"
        ) from err
    mapping = _hf_names(model, arch, gguf_config)
    _check_coverage(gguf, arch, model, mapping, tensors)
    _report(on_progress, "reading the tokenizer", 2, 3)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except (ValueError, KeyError, OSError) as err:
        raise ModelError(f"Could not read the tokenizer of {gguf.name}: {err}") from err
    with atomic_dir(folder) as tmp:
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        table = {
            "architecture": arch, "gguf_config": gguf_config, "size": gguf.stat().st_size,
            "source": str(gguf), "converted": time.time(), "tensors": tensors,
            "names": {n: mapping[n] for n, *_ in tensors if n in mapping},
        }  # fmt: skip
        (tmp / TABLE).write_text(json.dumps(table))
    _report(on_progress, "converted", 3, 3)
    return folder


def _hf_names(model: Any, arch: str, gguf_config: dict[str, Any]) -> dict[str, str]:
    from transformers.modeling_gguf_pytorch_utils import get_gguf_hf_weights_map

    mapping: dict[str, str] = get_gguf_hf_weights_map(model, _processor(arch, gguf_config))
    return mapping


def _check_coverage(
    gguf: Path, arch: str, model: Any, mapping: dict[str, str], tensors: list[Any]
) -> None:
    """Every weight of the model has a GGUF tensor of its size (tied heads excepted)."""
    params = {n: p for n, p in model.named_parameters() if n not in _tied(model)}
    found = {mapping[name]: int(np.prod(shape)) for name, _, shape, _, _ in tensors
             if name in mapping}  # fmt: skip
    missing = [n for n in params if n not in found]
    wrong = [n for n in params if n in found and found[n] != params[n].numel()]
    if missing or wrong:
        detail = "missing " + ", ".join(missing[:3]) if missing else "wrong size " + wrong[0]
        raise ModelError(
            f"{gguf.name} does not hold a complete '{arch}' model ({detail}); RapidQA cannot "
            "load it. Use another GGUF of the model."
        )


def _tied(model: Any) -> set[str]:
    """Weights that are copies of others (an LM head tied to the embedding)."""
    if not getattr(model.config.get_text_config(), "tie_word_embeddings", False):
        return set()
    return set(getattr(model, "_tied_weights_keys", None) or ())


def load(
    folder: Path, gguf: Path, dtype: torch.dtype, on_progress: ProgressFn = None,
    compact: WeightKind = "dense",
) -> Any:  # fmt: skip
    """The model of a converted `folder`, its weights read from `gguf` into `dtype`
    (CPU, eval mode, no gradients).

    `compact` "int4"/"int8": every projection and the LM head (int8) is packed as soon as
    it is read (`COMPACT_WEIGHT` on its module, the module's matrix left empty), so the
    dense model never exists in memory; `FastWeights` fuses the packed parts."""
    from transformers import AutoConfig

    table = json.loads((folder / TABLE).read_text())
    if gguf.stat().st_size != table["size"]:
        raise ModelError(f"{gguf} changed since it was converted; load it again.")
    config = AutoConfig.from_pretrained(str(folder))
    model = _meta_model(config, dtype)
    mapping: dict[str, str] = table["names"]  # GGUF name -> model parameter
    processor = _processor(table["architecture"], table["gguf_config"])
    params = dict(model.named_parameters())
    wanted = [entry for entry in table["tensors"] if entry[0] in mapping]  # not e.g. rope tables
    total = sum(entry[4] for entry in wanted)
    done = 0

    def read(entry: list[Any]) -> tuple[str, torch.Tensor | Weight]:
        """One tensor from the file, dequantized, fixed up, and packed into compact
        storage if it is a projection or the LM head (on a pool thread)."""
        from gguf import GGMLQuantizationType

        name, qtype, shape, offset, nbytes = entry
        torch.set_num_threads(1)  # this thread's ops; tensors run side by side instead
        with gguf.open("rb") as f:
            f.seek(offset)
            raw = np.frombuffer(f.read(nbytes), dtype=np.uint8)
        if raw.size != nbytes:
            raise ModelError(f"{gguf} is truncated (tensor {name}); reinstall it.")
        value = dequantize_tensor(raw, GGMLQuantizationType(qtype), tuple(shape), dtype)
        del raw
        # transformers' per-architecture fix-ups (e.g. Llama's Q/K row order); they use
        # array methods that torch tensors share
        result = processor.process(
            weights=value, name=name, tensor_key_mapping=mapping,
            parsed_parameters={"config": table["gguf_config"]},
        )  # fmt: skip
        param, tensor = mapping[result.name], torch.as_tensor(result.weights)
        kind = _compact_kind(param, compact)
        if kind == "dense":
            return param, tensor
        return param, quantize(tensor.reshape(params[param].shape), kind, dtype)

    # One tensor per core at a time: ~25% faster than each op on all cores (cache-sized
    # chunks stay in each core's cache); measured on the 2-core build machine.
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        for entry, (param, value) in zip(wanted, pool.map(read, wanted), strict=True):
            if isinstance(value, torch.Tensor):
                _assign(model, param, value, params)
            else:  # compact: the module keeps the packed weight, its matrix stays empty
                module_name, _, attr = param.rpartition(".")
                module = model.get_submodule(module_name)
                setattr(module, COMPACT_WEIGHT, value)
                empty = torch.empty(0, dtype=dtype)
                setattr(module, attr, torch.nn.Parameter(empty, requires_grad=False))
            done += entry[4]
            _report(on_progress, "loading weights", done, total)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    left = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise ModelError(f"{gguf.name} lacks weights for {', '.join(left[:3])}.")
    model.eval()
    model.requires_grad_(False)
    return model


def _compact_kind(param: str, compact: WeightKind) -> WeightKind:
    """Storage of parameter `param`: projections in `compact`, the head in int8."""
    if param == "lm_head.weight":
        return head_kind(compact)
    return compact if param.endswith("_proj.weight") else "dense"


def _assign(model: Any, name: str, value: torch.Tensor, params: dict[str, Any]) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    expected = params[name].shape
    if value.shape != expected:
        value = value.reshape(expected)  # e.g. 1-D norms stored with a unit dimension
    setattr(module, attr, torch.nn.Parameter(value, requires_grad=False))
