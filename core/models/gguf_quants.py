"""GGUF block formats dequantized with torch: vectorized, multi-threaded, chunked.

transformers reads a GGUF through gguf-py's numpy dequantizers (one thread, every
intermediate as a full fp32 array): ~100 s and 13.5 GB peak for a 1.5B Q4_K model on
the 2-core build machine. The same arithmetic as torch ops on the raw block bytes,
a few million blocks at a time into a preallocated tensor of the model's dtype, runs
on every core with a peak of one output tensor plus one chunk.

The layouts are llama.cpp's (`ggml-quants.c`); gguf-py's `gguf.quants.dequantize` is
the oracle the tests compare with, type by type, on real tensors. Types without a torch
version here fall back to gguf-py, still one tensor at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, dequantize
from torch import Tensor

Q = GGMLQuantizationType
QK_K = 256  # elements per K-quant super-block
_CHUNK_BLOCKS = 1 << 12  # blocks per torch pass: 1M elements of a K-quant (cache-sized)

# Bit positions, shaped to broadcast against [blocks, groups, 1, bytes].
_NIBBLES = torch.tensor([0, 4], dtype=torch.uint8).view(1, 1, 2, 1)


# Each block format is decoded to (q, scale, offset): integer codes [n, groups, size]
# and fp32 [n, groups, 1] factors with y = q * scale (+ offset). These are the products
# and sums gguf-py computes, in the same order, so the results are bit-identical.
Decoded = tuple[Tensor, Tensor, Tensor | None]


def _f16(raw: Tensor) -> Tensor:
    """[n, 2] little-endian bytes -> [n, 1, 1] fp32 (a block's fp16 scale)."""
    return raw.contiguous().view(torch.float16).float().unsqueeze(-1)


def _nibbles(qs: Tensor, groups: int) -> Tensor:
    """[n, groups * w] bytes -> [n, 2 * groups, w] 4-bit values (each group's low
    nibbles, then its high nibbles)."""
    n = qs.shape[0]
    q = qs.reshape(n, groups, 1, -1) >> _NIBBLES
    return (q & 0x0F).reshape(n, 2 * groups, -1)


def _signed(q: Tensor, zero: int) -> Tensor:
    return q.view(torch.int8) - zero  # codes < 128: the same bits as int8


def _q4_0(b: Tensor) -> Decoded:  # d fp16 | qs[16]: y = (q - 8) d
    return _signed(_nibbles(b[:, 2:], 1).reshape(-1, 1, 32), 8), _f16(b[:, :2]), None


def _q4_1(b: Tensor) -> Decoded:  # d, m fp16 | qs[16]: y = q d + m
    return _nibbles(b[:, 4:], 1).reshape(-1, 1, 32), _f16(b[:, :2]), _f16(b[:, 2:4])


def _high_bits(qh: Tensor) -> Tensor:
    """[n, 4] bytes of a little-endian uint32 -> [n, 1, 32] its bits, as bit 4."""
    bits = torch.arange(8, dtype=torch.uint8)
    return (((qh.unsqueeze(-1) >> bits) & 1) << 4).reshape(qh.shape[0], 1, 32)


def _q5_0(b: Tensor) -> Decoded:  # d fp16 | qh u32 | qs[16]: y = (q - 16) d
    q = _nibbles(b[:, 6:], 1).reshape(-1, 1, 32) | _high_bits(b[:, 2:6])
    return _signed(q, 16), _f16(b[:, :2]), None


def _q5_1(b: Tensor) -> Decoded:  # d, m fp16 | qh u32 | qs[16]: y = q d + m
    q = _nibbles(b[:, 8:], 1).reshape(-1, 1, 32) | _high_bits(b[:, 4:8])
    return q, _f16(b[:, :2]), _f16(b[:, 2:4])


def _q8_0(b: Tensor) -> Decoded:  # d fp16 | qs int8[32]: y = q d
    return b[:, 2:].contiguous().view(torch.int8).reshape(-1, 1, 32), _f16(b[:, :2]), None


def _scale_min_k4(b: Tensor) -> tuple[Tensor, Tensor]:
    """Q4_K / Q5_K: d, dmin and 12 bytes of 6-bit sub-block scales and mins -> the eight
    sub-blocks' scale d * sc and offset -dmin * m, each [n, 8, 1]."""
    s = b[:, 4:16].reshape(-1, 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], dim=-1).unsqueeze(-1)
    mn = torch.cat([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], dim=-1).unsqueeze(-1)
    return _f16(b[:, :2]) * sc, -(_f16(b[:, 2:4]) * mn)


def _q4_k(b: Tensor) -> Decoded:  # d, dmin fp16 | scales[12] | qs[128]: y = d sc q - dmin m
    scale, offset = _scale_min_k4(b)
    return _nibbles(b[:, 16:], 4), scale, offset


def _q5_k(b: Tensor) -> Decoded:  # d, dmin | scales[12] | qh[32] | qs[128]
    n = b.shape[0]
    scale, offset = _scale_min_k4(b)
    bits = torch.arange(8, dtype=torch.uint8).view(1, 8, 1)
    high = ((b[:, 16:48].reshape(n, 1, 32) >> bits) & 1) << 4  # [n, 8, 32]
    return _nibbles(b[:, 48:], 4) | high, scale, offset


_CRUMBS = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)


def _q6_k(b: Tensor) -> Decoded:  # ql[128] | qh[64] | scales int8[16] | d: y = d sc (q - 32)
    n = b.shape[0]
    low = _nibbles(b[:, :128], 2).reshape(n, 8, 32)
    high = ((b[:, 128:192].reshape(n, 2, 1, 32) >> _CRUMBS) & 0x03).reshape(n, 8, 32)
    q = _signed(low | (high << 4), 32).reshape(n, 16, 16)
    scales = b[:, 192:208].contiguous().view(torch.int8).unsqueeze(-1)  # [n, 16, 1]
    return q, _f16(b[:, 208:210]) * scales, None


def _plain(dtype: torch.dtype) -> Callable[[Tensor], Decoded]:
    def decode(b: Tensor) -> Decoded:
        return b.contiguous().view(dtype).reshape(b.shape[0], 1, -1), _ONE, None

    return decode


_ONE = torch.ones(1, 1, 1)


_TORCH: dict[GGMLQuantizationType, Callable[[Tensor], Decoded]] = {
    Q.F32: _plain(torch.float32),
    Q.F16: _plain(torch.float16),
    Q.BF16: _plain(torch.bfloat16),
    Q.Q4_0: _q4_0,
    Q.Q4_1: _q4_1,
    Q.Q5_0: _q5_0,
    Q.Q5_1: _q5_1,
    Q.Q8_0: _q8_0,
    Q.Q4_K: _q4_k,
    Q.Q5_K: _q5_k,
    Q.Q6_K: _q6_k,
}


def supported_in_torch(qtype: GGMLQuantizationType) -> bool:
    """True when `dequantize_tensor` runs this type with torch (else gguf-py's numpy)."""
    return qtype in _TORCH


def dequantize_tensor(
    raw: np.ndarray, qtype: GGMLQuantizationType, shape: tuple[int, ...], dtype: torch.dtype
) -> Tensor:
    """A GGUF tensor's bytes (`raw`, uint8 or the type's element array) as a `dtype`
    tensor of `shape` (PyTorch order: the GGUF shape reversed)."""
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    count = int(np.prod(shape))
    if qtype not in _TORCH:  # rare types: gguf-py, one tensor at a time
        values = dequantize(raw, qtype).reshape(shape)
        return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)
    with warnings.catch_warnings():  # a read-only memmap: only read here
        warnings.simplefilter("ignore", UserWarning)
        data = torch.from_numpy(np.ascontiguousarray(raw).view(np.uint8).reshape(-1))
    blocks = data.reshape(-1, block_bytes)
    if blocks.shape[0] * block_elems != count:
        raise ValueError(
            f"{qtype.name} data holds {blocks.shape[0] * block_elems} values, shape needs {count}"
        )
    out = torch.empty(blocks.shape[0], block_elems, dtype=dtype)
    decode = _TORCH[qtype]
    for start in range(0, blocks.shape[0], _CHUNK_BLOCKS):
        part = blocks[start : start + _CHUNK_BLOCKS]
        q, scale, offset = decode(part)
        # fp32 results go straight into `out`; other dtypes are rounded once, at the end
        dest = out[start : start + part.shape[0]].view(q.shape)
        y = torch.mul(q, scale, out=dest) if dtype == torch.float32 else q * scale
        if offset is not None:
            y.add_(offset)
        if y is not dest:
            dest.copy_(y)
    return out.reshape(shape)
