"""Roofline cost model of one decoding forward pass of a decoder-only transformer, and the
expected speedup of a RAPID / speculative-decoding round built from measured step times.

Imports only torch and the standard library: `bench/gpu_speed.py` imports it from its
own folder on a GPU machine where the RapidQA engine (`core`) is not installed.

Notation (a transformers-style config): hidden size h, layers N, query heads H, key/value
heads G, head dimension D, MLP width I, vocabulary V; b = bytes per weight element,
b_kv = bytes per cached key/value element; L = tokens already in the KV cache (the
context), k = new tokens in this forward, r = rows of logits computed (k, or 1 with
`logits_to_keep=1`), R = rows of the LM head (V, or fewer for a trimmed head).

Parameters (biases and norms included, rotary tables excluded)::

    P_layer  = h·H·D + 2·h·G·D + H·D·h          (q, k, v, o projections)
             + (H + 2G)·D  if the QKV projections have a bias (Qwen2)
             + 3·h·I                            (gate, up, down)
             + 2·h                              (two RMSNorm weights)
    P_nonemb = N·P_layer + h                    (+ the final norm)
    P_head   = R·h                              (the LM head rows that are read)

Bytes moved by one forward (activations are ignored: they stay in cache/registers)::

    bytes = b·(P_nonemb + P_head)               every weight read once
          + b·k·h                               embedding rows gathered for the k tokens
          + b_kv·2·N·G·D·L                      KV cache read (keys and values)
          + b_kv·2·N·G·D·k                      KV of the k new tokens written

FLOPs (a multiply-add = 2 FLOPs; softmax, norms and rotary are ignored)::

    flops = 2·P_nonemb·k                        all linear layers
          + 2·h·R·r                             LM head for r rows of logits
          + 4·N·H·D·L·k                         attention: Q·Kᵀ and P·V over L keys

Predicted time (roofline)::

    t = max(bytes / bandwidth, flops / peak_flops)

and the step is "memory"-bound when the first term wins, "compute"-bound otherwise. A
decode step at small k is memory-bound on every machine we care about: that is why a
verify of k tokens costs about one 1-token step, the premise of speculative decoding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

Bound = Literal["memory", "compute"]

GB = 1e9
TFLOP = 1e12


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that decide its step cost."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    name: str = ""

    @classmethod
    def from_config(cls, config: Any, name: str = "") -> ModelShape:
        """Read a transformers config (object or dict).

        `head_dim` defaults to hidden_size / num_attention_heads, `num_key_value_heads`
        to num_attention_heads; `qkv_bias` is `attention_bias` where the config has it,
        and true for Qwen2 (whose q/k/v projections always carry a bias).
        """

        def get(key: str, default: Any = None) -> Any:
            if isinstance(config, Mapping):
                return config.get(key, default)
            return getattr(config, key, default)

        hidden = int(get("hidden_size"))
        heads = int(get("num_attention_heads"))
        kv_heads = get("num_key_value_heads") or heads
        head_dim = get("head_dim") or hidden // heads
        model_type = str(get("model_type", "") or "")
        qkv_bias = bool(get("attention_bias", False)) or model_type == "qwen2"
        return cls(
            hidden_size=hidden,
            num_layers=int(get("num_hidden_layers")),
            num_heads=heads,
            num_kv_heads=int(kv_heads),
            head_dim=int(head_dim),
            intermediate_size=int(get("intermediate_size")),
            vocab_size=int(get("vocab_size")),
            tie_word_embeddings=bool(get("tie_word_embeddings", False)),
            qkv_bias=qkv_bias,
            name=name or model_type,
        )

    @property
    def params_per_layer(self) -> int:
        """P_layer: attention projections (+ QKV bias), gated MLP, two norms."""
        h, hd = self.hidden_size, self.head_dim
        attn = h * self.num_heads * hd + 2 * h * self.num_kv_heads * hd + self.num_heads * hd * h
        bias = (self.num_heads + 2 * self.num_kv_heads) * hd if self.qkv_bias else 0
        return attn + bias + 3 * h * self.intermediate_size + 2 * h

    @property
    def params_nonembedding(self) -> int:
        """P_nonemb = N·P_layer + h (the final norm): everything but embedding and head."""
        return self.num_layers * self.params_per_layer + self.hidden_size

    @property
    def params_embedding(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params_total(self) -> int:
        """All parameters; a tied LM head is the embedding matrix and counts once."""
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return self.params_nonembedding + self.params_embedding + head

    def kv_elements_per_token(self) -> int:
        """Cached elements per token: 2 (K and V) · N · G · D."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceSpec:
    """A machine's memory bandwidth (bytes/s) and peak dense FLOP/s for the step's dtype."""

    name: str
    bandwidth: float
    peak_flops: float
    source: str  # "nominal (datasheet)" or "measured ..."


# Nominal datasheet figures (dense bf16 tensor-core peak, HBM bandwidth). Real kernels
# reach ~80-90 % of the bandwidth at best; the measured/predicted ratio shows the gap.
H100_SXM = DeviceSpec("NVIDIA H100 SXM", 3.35e12, 989e12, "nominal (datasheet)")
H100_PCIE = DeviceSpec("NVIDIA H100 PCIe", 2.0e12, 756e12, "nominal (datasheet)")
H200 = DeviceSpec("NVIDIA H200", 4.8e12, 989e12, "nominal (datasheet)")
NOMINAL_DEVICES: tuple[DeviceSpec, ...] = (H100_SXM, H100_PCIE, H200)


def nominal_device(device_name: str) -> DeviceSpec | None:
    """The nominal figures for a `torch.cuda.get_device_name()` string, or None.

    "H200" → H200; "H100" with "PCIe" → H100 PCIe; any other "H100" (e.g. "NVIDIA H100
    80GB HBM3") → H100 SXM.
    """
    upper = device_name.upper()
    if "H200" in upper:
        return H200
    if "H100" in upper:
        return H100_PCIE if "PCIE" in upper else H100_SXM
    return None


# --------------------------------------------------------------------------- step cost


@dataclass(frozen=True)
class StepCost:
    """Bytes and FLOPs of one forward of `new_tokens` tokens over `context` cached ones."""

    context: int
    new_tokens: int
    logits_rows: int
    head_rows: int
    weight_bytes: float
    embedding_bytes: float
    kv_read_bytes: float
    kv_write_bytes: float
    linear_flops: float
    head_flops: float
    attention_flops: float

    @property
    def total_bytes(self) -> float:
        return self.weight_bytes + self.embedding_bytes + self.kv_read_bytes + self.kv_write_bytes

    @property
    def total_flops(self) -> float:
        return self.linear_flops + self.head_flops + self.attention_flops

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved; below the device's peak_flops/bandwidth → memory-bound."""
        return self.total_flops / self.total_bytes


@dataclass(frozen=True)
class Prediction:
    """Roofline time of a step on a device: max(memory time, compute time)."""

    memory_s: float
    compute_s: float

    @property
    def seconds(self) -> float:
        return max(self.memory_s, self.compute_s)

    @property
    def bound(self) -> Bound:
        return "memory" if self.memory_s >= self.compute_s else "compute"


def step_cost(
    shape: ModelShape,
    dtype_bytes: float,
    context: int,
    new_tokens: int,
    *,
    logits_rows: int | None = None,
    head_rows: int | None = None,
    kv_dtype_bytes: float | None = None,
) -> StepCost:
    """Bytes and FLOPs of one forward (see the module docstring for the formulas).

    `logits_rows` (r) defaults to `new_tokens` (a verify needs every row's logits); pass 1
    for `logits_to_keep=1`. `head_rows` (R) defaults to the vocabulary (a trimmed drafter
    head reads fewer rows). `kv_dtype_bytes` defaults to `dtype_bytes`.
    """
    if context < 0 or new_tokens < 1:
        raise ValueError(f"need context >= 0 and new_tokens >= 1, got {context}, {new_tokens}")
    r = new_tokens if logits_rows is None else logits_rows
    rows = shape.vocab_size if head_rows is None else head_rows
    b_kv = dtype_bytes if kv_dtype_bytes is None else kv_dtype_bytes
    h = shape.hidden_size
    kv_per_token = shape.kv_elements_per_token()
    return StepCost(
        context=context,
        new_tokens=new_tokens,
        logits_rows=r,
        head_rows=rows,
        weight_bytes=dtype_bytes * (shape.params_nonembedding + rows * h),
        embedding_bytes=dtype_bytes * new_tokens * h,
        kv_read_bytes=b_kv * kv_per_token * context,
        kv_write_bytes=b_kv * kv_per_token * new_tokens,
        linear_flops=2.0 * shape.params_nonembedding * new_tokens,
        head_flops=2.0 * h * rows * r,
        attention_flops=4.0 * shape.num_layers * shape.num_heads * shape.head_dim * context
        * new_tokens,
    )  # fmt: skip


def predict(cost: StepCost, device: DeviceSpec) -> Prediction:
    """t = max(bytes / bandwidth, flops / peak_flops)."""
    return Prediction(
        memory_s=cost.total_bytes / device.bandwidth,
        compute_s=cost.total_flops / device.peak_flops,
    )


def predict_step(
    shape: ModelShape,
    device: DeviceSpec,
    dtype_bytes: float,
    context: int,
    new_tokens: int,
    **kwargs: Any,
) -> Prediction:
    """`predict(step_cost(...), device)` in one call."""
    return predict(step_cost(shape, dtype_bytes, context, new_tokens, **kwargs), device)


# --------------------------------------------------------------------------- RAPID rounds


@dataclass(frozen=True)
class RoundProjection:
    """Expected throughput of speculative rounds against plain one-token decoding."""

    gamma: int
    mean_accepted: float
    tokens_per_round: float
    round_s: float
    tokens_per_s: float
    baseline_tokens_per_s: float
    speedup: float


def rapid_round_projection(
    t_verify_k: float,
    t_target_1: float,
    t_draft: float,
    gamma: int,
    mean_accepted: float,
) -> RoundProjection:
    """Project the speedup of RAPID / speculative decoding from step times (seconds).

    One round: the drafter proposes `gamma` tokens (gamma drafter steps, the first of
    which also consumes the previous round's last committed token), then the target
    verifies them in one forward of gamma + 1 tokens (the last committed token and the
    drafts), which also yields the correction or bonus token::

        tokens per round = mean_accepted + 1
        round time       = gamma · t_draft + t_verify(gamma + 1)
        speedup          = (tokens per round / round time) / (1 / t_target_1)

    `t_verify_k` is the time of that (gamma + 1)-token target forward, `t_target_1` the
    plain decoding step (the baseline makes one token per step), `mean_accepted` the mean
    number of drafts accepted per round (0 … gamma). Ignored: the drafter consuming the
    last draft after a fully accepted round (it rides along with the next round's first
    drafter step), sampling and bookkeeping overheads.
    """
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    if not 0.0 <= mean_accepted <= gamma:
        raise ValueError(f"mean_accepted must lie in [0, gamma={gamma}], got {mean_accepted}")
    if min(t_verify_k, t_target_1) <= 0 or t_draft < 0:
        raise ValueError("step times must be positive")
    tokens = mean_accepted + 1.0
    round_s = gamma * t_draft + t_verify_k
    tps = tokens / round_s
    base = 1.0 / t_target_1
    return RoundProjection(
        gamma=gamma,
        mean_accepted=mean_accepted,
        tokens_per_round=tokens,
        round_s=round_s,
        tokens_per_s=tps,
        baseline_tokens_per_s=base,
        speedup=tps / base,
    )


def expected_accepted(rate: float, gamma: int) -> float:
    """Mean accepted drafts per round if each draft is accepted independently with
    probability `rate` until the first rejection (Leviathan et al. 2023)::

        E[accepted] = Σ_{i=1..gamma} rate^i = rate · (1 - rate^gamma) / (1 - rate)
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    if rate == 1.0:
        return float(gamma)
    return rate * (1.0 - rate**gamma) / (1.0 - rate)


# --------------------------------------------------------------------------- measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    fn()  # warm-up (allocations, kernel selection)
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    # Capacity, not typical speed: the best run is the one least disturbed by other load.
    return min(times)


@dataclass(frozen=True)
class Bandwidth:
    """Measured memory bandwidth, bytes/s."""

    read: float  # x.sum(): bytes of x per second
    copy: float  # y.copy_(x): bytes read + bytes written per second
    nbytes: int


def measure_bandwidth(
    device: str | torch.device = "cpu", nbytes: int | None = None, repeat: int = 5
) -> Bandwidth:
    """Stream a large fp32 tensor: `x.sum()` (read) and `y.copy_(x)` (read + write).

    The buffer (default 256 MB on CPU, 2 GB on CUDA) is far larger than any cache. The
    best of `repeat` runs is reported. `read` is the figure a decode step needs: it
    streams weights and KV cache.
    """
    dev = torch.device(device)
    size = nbytes or (2 * 1024**3 if dev.type == "cuda" else 256 * 1024**2)
    n = size // 4
    x = torch.ones(n, dtype=torch.float32, device=dev)
    y = torch.empty_like(x)
    t_read = _best_time(lambda: x.sum(), dev, repeat)
    t_copy = _best_time(lambda: y.copy_(x), dev, repeat)
    return Bandwidth(read=n * 4 / t_read, copy=2 * n * 4 / t_copy, nbytes=n * 4)


def measure_flops(
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    n: int | None = None,
    repeat: int = 3,
) -> float:
    """FLOP/s of an n×n by n×n matmul (2·n³ FLOPs) in `dtype`; best of `repeat` runs.

    Default n: 2048 on CPU, 8192 on CUDA.
    """
    dev = torch.device(device)
    size = n or (8192 if dev.type == "cuda" else 2048)
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)
    t = _best_time(lambda: a @ b, dev, repeat)
    return 2.0 * size**3 / t


def measured_device(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, quick: bool = False
) -> tuple[DeviceSpec, Bandwidth]:
    """A DeviceSpec from this machine's measured read bandwidth and matmul FLOP/s."""
    dev = torch.device(device)
    bw = measure_bandwidth(dev, repeat=3 if quick else 5)
    flops = measure_flops(dtype, dev, repeat=2 if quick else 3)
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({threads} threads)"
    spec = DeviceSpec(name, bw.read, flops, f"measured (x.sum() read, {dtype} matmul)")
    return spec, bw


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass (with its derived properties where it has them) as a JSON-able dict."""
    out = asdict(obj)
    for prop in ("total_bytes", "total_flops", "seconds", "bound", "arithmetic_intensity"):
        if hasattr(type(obj), prop):
            out[prop] = getattr(obj, prop)
    return out
