"""Weight-only quantized matrices for the decode path: int8 per row, int4 per group of 32.

A decode step reads every weight once, so on a CPU its time is bytes / bandwidth
(docs/architecture.md, "Precision"). These classes hold one linear layer's weight in
fewer bytes and multiply bf16 activations with it through PyTorch's own CPU kernels:

- `Int8Weight`: symmetric int8 per output row, `torch._weight_int8pack_mm`;
- `Int4Weight`: asymmetric int4 per group of 32 inputs (the granularity of a GGUF
  Q4_K sub-block), `aten._weight_int4pack_mm_for_cpu` on the packed layout that
  `aten._convert_weight_to_int4pack_for_cpu` makes;
- `DenseWeight`: the plain matrix (fp32, bf16, fp16), `F.linear`.

All three answer `mm(x)` (x @ W^T for a short block of rows) and `dense(dtype)`
(the matrix itself, for long prefill blocks: there a dequantized bf16 GEMM is ~2x
faster than the int4 kernel, which is built for few rows).
torchao was measured and not used: its CPU int4 layout is under `torchao.prototype`
in 0.18 and its int8 weight-only linear ran 4x slower than the aten kernel here.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

WeightKind = Literal["int4", "int8", "dense"]
COMPACT_WEIGHT = "rapidqa_weight"  # an nn.Linear's packed weight, set by a compact load
GROUP = 32  # int4 group size: inputs sharing one scale and zero
_INNER_K_TILES = 8  # the packing's K tiling (K must be a multiple of 16 * this)
_BLOCK_N = 64  # rows per packed block in the CPU int4 layout (checked by `_layout_ok`)
# Blocks of up to this many rows (a question, a verify) run the packed kernels; a
# longer block dequantizes the matrix for one bf16 GEMM. Dequantizing costs about as
# much as a bf16 prefill of 512 tokens, and the int4 kernel runs a 512-row block 2.4x
# slower than bf16 (docs/benchmarks.md, "Compact weights"): the crossover is near 400.
KERNEL_ROWS = 256


class Weight(Protocol):
    """A [N, K] linear-layer weight, in whatever storage."""

    shape: tuple[int, int]

    def mm(self, x: Tensor) -> Tensor: ...

    def mm_long(self, x: Tensor) -> Tensor: ...

    def dense(self, dtype: torch.dtype) -> Tensor: ...

    def rows(self, ids: Tensor) -> Weight: ...

    @property
    def nbytes(self) -> int: ...


class DenseWeight:
    """A plain matrix."""

    def __init__(self, w: Tensor) -> None:
        self.w = w
        self.shape = (int(w.shape[0]), int(w.shape[1]))

    def mm(self, x: Tensor) -> Tensor:
        return F.linear(x, self.w)

    def mm_long(self, x: Tensor) -> Tensor:
        return F.linear(x, self.w)

    def dense(self, dtype: torch.dtype) -> Tensor:
        return self.w if self.w.dtype == dtype else self.w.to(dtype)

    def rows(self, ids: Tensor) -> DenseWeight:
        return DenseWeight(self.w[ids.to(self.w.device)].contiguous())

    @property
    def nbytes(self) -> int:
        return self.w.numel() * self.w.element_size()


class Int8Weight:
    """Symmetric int8 per output row: W ~ q * scale[:, None]."""

    def __init__(self, q: Tensor, scale: Tensor) -> None:
        self.q, self.scale = q, scale
        self.shape = (int(q.shape[0]), int(q.shape[1]))

    @staticmethod
    def supports(w: Tensor) -> bool:
        """The CPU kernel reads past the row for K % 16 != 0 (garbage out, tested)."""
        return w.device.type == "cpu" and w.shape[1] % 16 == 0

    @classmethod
    def quantize(cls, w: Tensor, dtype: torch.dtype) -> Int8Weight:
        q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
        scale = torch.empty(w.shape[0], dtype=dtype, device=w.device)
        for rows in _row_blocks(w.shape[0]):  # bounded fp32 temporaries (a 151K-row head)
            wf = w[rows].float()
            # codes are chosen against the scale as stored (rounded to `dtype`)
            scale[rows] = (wf.abs().amax(dim=1) / 127.0).clamp_min(1e-12).to(dtype)
            q[rows] = torch.round(wf / scale[rows].float()[:, None]).clamp_(-127, 127)
        return cls(q, scale)

    def mm(self, x: Tensor) -> Tensor:
        return torch._weight_int8pack_mm(x.contiguous(), self.q, self.scale)

    def mm_long(self, x: Tensor) -> Tensor:
        if x.shape[0] <= KERNEL_ROWS:
            return self.mm(x)
        return F.linear(x, self.dense(x.dtype))

    def dense(self, dtype: torch.dtype) -> Tensor:
        return self.q.to(dtype) * self.scale.to(dtype)[:, None]

    def rows(self, ids: Tensor) -> Int8Weight:
        ids = ids.to(self.q.device)
        return Int8Weight(self.q[ids].contiguous(), self.scale[ids].contiguous())

    @property
    def nbytes(self) -> int:
        return self.q.numel() + self.scale.numel() * self.scale.element_size()


class Int4Weight:
    """Asymmetric int4 per group of 32 inputs: W ~ (code - 8) * scale + zero.

    `codes` [N, K] in 0..15, `scale` and `zero` [N, K / 32]. Stored only as the CPU
    kernel's packed bytes [N, K / 2] and its `scales_and_zeros` [K / 32, N, 2].
    """

    def __init__(self, packed: Tensor, scales_zeros: Tensor) -> None:
        self.packed, self.scales_zeros = packed, scales_zeros
        self.shape = (int(scales_zeros.shape[1]), int(packed.shape[1]) * 2)

    @classmethod
    def pack(cls, codes: Tensor, scale: Tensor, zero: Tensor, dtype: torch.dtype) -> Int4Weight:
        """From codes [N, K] in 0..15 and per-group scale, zero [N, K / 32]."""
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            codes.to(torch.int32).contiguous(), _INNER_K_TILES
        )
        sz = torch.stack([scale, zero], dim=-1).transpose(0, 1).to(dtype).contiguous()
        return cls(packed, sz)

    @staticmethod
    def supports(w: Tensor) -> bool:
        """True when the int4 kernel takes this shape on this device."""
        n, k = w.shape
        return (
            w.device.type == "cpu" and n % _BLOCK_N == 0 and k % (16 * _INNER_K_TILES) == 0
            and _layout_ok()
        )  # fmt: skip

    @classmethod
    def quantize(cls, w: Tensor, dtype: torch.dtype) -> Int4Weight:
        """Round-to-nearest over each group's [min, max] (16 levels), against the scale
        and zero as stored (rounded to `dtype`)."""
        parts = []
        for rows in _row_blocks(w.shape[0]):  # the layout is separable by 64-row blocks
            n, k = w[rows].shape
            wg = w[rows].float().reshape(n, k // GROUP, GROUP)
            lo, hi = wg.amin(dim=-1), wg.amax(dim=-1)
            scale = ((hi - lo) / 15.0).clamp_min(1e-12).to(dtype).float()
            zero = (lo + 8.0 * scale).to(dtype).float()
            base = zero - 8.0 * scale  # the stored grid's level 0
            codes = torch.round((wg - base[..., None]) / scale[..., None]).clamp_(0, 15)
            parts.append(cls.pack(codes.reshape(n, k).to(torch.uint8), scale, zero, dtype))
        return parts[0] if len(parts) == 1 else cls.stack(parts)

    @classmethod
    def stack(cls, parts: list[Int4Weight]) -> Int4Weight:
        """The parts stacked along N without unpacking (the layout is separable by
        64-row blocks)."""
        k = parts[0].shape[1]
        packed = torch.cat([p.packed.view(-1, k, _BLOCK_N // 2) for p in parts])
        return cls(packed.view(-1, k // 2), torch.cat([p.scales_zeros for p in parts], 1))

    def mm(self, x: Tensor) -> Tensor:
        out: Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.contiguous(), self.packed, GROUP, self.scales_zeros
        )
        return out

    def mm_long(self, x: Tensor) -> Tensor:
        if x.shape[0] <= KERNEL_ROWS:
            return self.mm(x)
        return torch.mm(x, self.dense_t(x.dtype))

    def codes_t(self, dtype: torch.dtype = torch.uint8) -> Tensor:
        """The codes as a [K, N] matrix, unpacked from the kernel's layout (`_layout_ok`):
        byte j of block b at input k holds rows 64 b + j (low nibble) and 64 b + 32 + j."""
        n, k = self.shape
        half = _BLOCK_N // 2
        blocks = self.packed.view(n // _BLOCK_N, k, half).permute(1, 0, 2)  # [K, N/64, 32]
        out = torch.empty(k, n // _BLOCK_N, _BLOCK_N, dtype=dtype, device=self.packed.device)
        out[:, :, :half].copy_(blocks & 15)  # 32-byte runs: a cheap transposition
        out[:, :, half:].copy_(blocks >> 4)
        return out.view(k, n)

    def codes(self) -> Tensor:
        """The [N, K] codes."""
        return self.codes_t().t().contiguous()

    def dense_t(self, dtype: torch.dtype) -> Tensor:
        """W^T [K, N], for a prefill block's x @ W^T: ~3x faster to build than W."""
        n, k = self.shape
        out = self.codes_t(dtype)
        sz = self.scales_zeros.to(dtype)  # [K/32, N, 2]
        scale, zero = sz[..., 0][:, None, :], sz[..., 1][:, None, :]
        # (code - 8) * scale + zero, as the kernel computes it: code - 8 is exact, and the
        # terms stay small (code * scale + (zero - 8 scale) would cancel, losing bits)
        out.view(k // GROUP, GROUP, n).sub_(8).mul_(scale).add_(zero)
        return out

    def dense(self, dtype: torch.dtype) -> Tensor:
        return self.dense_t(dtype).t()

    def rows(self, ids: Tensor) -> Weight:
        return DenseWeight(self.dense(self.scales_zeros.dtype)).rows(ids)

    @property
    def nbytes(self) -> int:
        return self.packed.numel() + self.scales_zeros.numel() * self.scales_zeros.element_size()


_LAYOUT: list[bool] = []


def _layout_ok() -> bool:
    """Whether this PyTorch packs int4 CPU weights as `Int4Weight.codes` unpacks them:
    blocks of 64 rows, byte j of input k holding rows j (low nibble) and j + 32."""
    if not _LAYOUT:
        try:
            codes = torch.randint(0, 16, (2 * _BLOCK_N, 16 * _INNER_K_TILES), dtype=torch.uint8)
            zeros = torch.zeros(codes.shape[0], codes.shape[1] // GROUP)
            w = Int4Weight.pack(codes, zeros, zeros, torch.bfloat16)
            _LAYOUT.append(bool(torch.equal(w.codes(), codes)))
        except (RuntimeError, AttributeError):  # no CPU int4 kernel in this build
            _LAYOUT.append(False)
    return _LAYOUT[0]


def head_kind(weights: WeightKind) -> WeightKind:
    """Storage of the LM head for a model whose projections use `weights`: int8 for
    either compact kind (the GGUFs keep the head at 6-8 bits, and the drafter slices
    rows of it), else dense."""
    return "dense" if weights == "dense" else "int8"


def quantize(w: Tensor, kind: WeightKind, dtype: torch.dtype) -> Weight:
    """`w` in the storage `kind`, multiplying activations of `dtype`.

    int4 falls back to int8 for shapes the packed kernel does not take, int8 to dense;
    quantized kinds need a CPU tensor (the engine keeps dense bf16 weights on a GPU).
    """
    if kind == "int4" and Int4Weight.supports(w):
        return Int4Weight.quantize(w, dtype)
    if kind in ("int4", "int8") and Int8Weight.supports(w):
        return Int8Weight.quantize(w, dtype)
    return DenseWeight(w if w.dtype == dtype else w.to(dtype))


def _row_blocks(n: int, block: int = 8192) -> list[slice]:
    """Row ranges of at most `block` rows (a multiple of the int4 layout's 64)."""
    return [slice(i, min(i + block, n)) for i in range(0, n, block)]


def concat(parts: list[Weight]) -> Weight:
    """The weights stacked along the output dimension (fused QKV, gate/up): packed
    storage is concatenated as it is when every part has the same kind (the int4
    layout is separable by 64-row blocks), else the parts are re-quantized together."""
    int4 = [p for p in parts if isinstance(p, Int4Weight)]
    if len(int4) == len(parts):
        return Int4Weight.stack(int4)
    if all(isinstance(p, Int8Weight) for p in parts):
        int8 = [p for p in parts if isinstance(p, Int8Weight)]
        return Int8Weight(torch.cat([p.q for p in int8]), torch.cat([p.scale for p in int8]))
    if all(isinstance(p, DenseWeight) for p in parts):
        return DenseWeight(torch.cat([p.w for p in parts if isinstance(p, DenseWeight)]))
    dtype = torch.bfloat16
    kind: WeightKind = "int4" if any(isinstance(p, Int4Weight) for p in parts) else "int8"
    return quantize(torch.cat([p.dense(dtype) for p in parts]), kind, dtype)
