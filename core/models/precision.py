"""How a model's weights are stored and which dtype it computes in, per device.

The user picks one `precision` (CLI `--precision`, the settings dialog, `ModelConfig`):

- `auto`: on a GPU, bf16 (fp16 where the GPU lacks bf16); on a CPU, **int4** weights
  for a model that comes quantized (a GGUF, like the offline pair) and fp32 for a
  float checkpoint, which then runs exactly like its HF forward;
- `int4`, `int8`: weight-only compact storage on the CPU (core/decoding/qlinear.py),
  bf16 activations and KV cache where the CPU has native bf16 (else fp32);
- `bfloat16`, `float16`, `float32`: dense weights in that dtype.

Why int4 by default on a CPU: a decode step reads every weight once, so its time is
bytes / bandwidth. On the 2-core build machine a Qwen2.5-Coder-1.5B step at 8K tokens
of context is several times faster in int4 than in bf16, and the GGUF's weights were 4-6 bit
already (docs/benchmarks.md, "Compact weights").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from core.config import PRECISIONS
from core.decoding.qlinear import WeightKind
from core.errors import ConfigError

_DENSE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHORT_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """Weight storage and compute dtype of one loaded model."""

    weights: WeightKind
    dtype: torch.dtype

    @property
    def label(self) -> str:
        """What the UI shows: "int4", "bfloat16", ..."""
        dtype = str(self.dtype).removeprefix("torch.")
        return dtype if self.weights == "dense" else self.weights


def check_precision(precision: str) -> str:
    """The canonical name of `precision` (fp32/bf16/fp16 accepted), or a ConfigError."""
    name = SHORT_DTYPES.get(precision, precision)
    if name not in PRECISIONS:
        raise ConfigError(f"Unknown precision '{precision}': use one of {', '.join(PRECISIONS)}.")
    return name


def resolve_precision(precision: str, device: torch.device, quantized: bool = False) -> Precision:
    """The `Precision` for a setting on `device`; `quantized`: the weights come from a
    GGUF (already 4-8 bit, so compact storage loses little)."""
    name = check_precision(precision)
    cpu_dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    if name in ("int4", "int8"):
        if device.type != "cpu":
            raise ConfigError(
                f"Precision {name} runs on the CPU only (PyTorch has no {name} weight-only "
                "kernel for this device here). Choose precision 'auto' or 'bfloat16' for "
                "the GPU, or device 'cpu'."
            )
        return Precision(name, cpu_dtype)  # type: ignore[arg-type]
    if name in _DENSE:
        return Precision("dense", _DENSE[name])
    if device.type == "cuda":
        gpu = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Precision("dense", gpu)
    if quantized:
        return Precision("int4", cpu_dtype)
    return Precision("dense", torch.float32)
