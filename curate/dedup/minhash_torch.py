"""MinHash on a GPU: the same bits as `minhash.signatures_numpy`.

On CUDA the work is one fused Triton kernel (`fold_triton`): a program per (document, 16 permutations)
walks the document's shingles in tiles, computes the permutations in uint64 registers (Triton has
wrapping uint64 multiply and logical shifts) and keeps a running minimum, so only the hashes in and the
signatures out touch GPU memory. Triton ships with torch's CUDA builds. Without it (and in the tests on
CPU) the eager torch kernel `permute` computes the same bits, one elementwise op at a time: ~25
memory-bound passes over (shingles x permutations) int64 tensors, about a CPU core's speed on a GPU.

The eager kernel: torch has no usable uint64 arithmetic (add, shift, compare and min are not
implemented for it), and int64 overflow is undefined in C++, so it never overflows: `a * h` (a < 2^61,
h < 2^32) is rebuilt from 32- and 16-bit limbs whose partial products stay below 2^61, giving the high
and low 32 bits of `(a * h + b) mod 2^64` exactly; the reduction mod 2^61 - 1 then works on values
below 2^63. The tests run it on the CPU device against the numpy path (itself checked against
datasketch), and both kernels on a GPU when there is one.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch

from curate.dedup.minhash import EMPTY, MERSENNE_61, Permutations
from curate.dedup.shingles import Shingles

# Shingles per block on a GPU: block x permutations int64 temporaries of a few hundred MB at most.
GPU_BLOCK = 1 << 17
_LOW16 = 0xFFFF
_LOW29 = (1 << 29) - 1
_LOW32 = 0xFFFFFFFF


def _limbs(values: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit halves of uint64 values, as int64 rows."""
    high = torch.from_numpy((values >> np.uint64(32)).astype(np.int64)).to(device)
    low = torch.from_numpy((values & np.uint64(_LOW32)).astype(np.int64)).to(device)
    return high[None, :], low[None, :]


def permute(h: torch.Tensor, a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]):
    """((a * h + b) mod 2^64) mod (2^61 - 1), masked to 32 bits, for h < 2^32: shape (len(h), num_perm)."""
    (a_hi, a_lo), (b_hi, b_lo) = a, b
    h = h[:, None]
    t0 = a_lo * (h & _LOW16)  # < 2^48
    t1 = a_lo * (h >> 16)  # < 2^48
    t2 = (a_hi * h) & _LOW32  # a_hi < 2^29: the product is < 2^61
    low_sum = t0 + ((t1 & _LOW16) << 16) + b_lo
    lo = low_sum & _LOW32
    hi = ((low_sum >> 32) + (t1 >> 16) + t2 + b_hi) & _LOW32
    # x = hi * 2^32 + lo; x mod p = (x & p) + (x >> 61), less p once if it reaches p.
    r = ((hi & _LOW29) << 32) + lo + (hi >> 29)
    r = torch.where(r >= MERSENNE_61, r - MERSENNE_61, r)
    return r & _LOW32


def signatures_torch(
    shingles: Shingles, perms: Permutations, device: str, block: int = GPU_BLOCK
) -> np.ndarray:
    """One uint32 signature row per document, computed on `device` ("cuda", or "cpu" for tests)."""
    if torch.device(device).type == "cuda" and _triton_fold() is not None:
        return signatures_triton(shingles, perms, device)
    return signatures_eager(shingles, perms, device, block)


def signatures_triton(shingles: Shingles, perms: Permutations, device: str) -> np.ndarray:
    """Signatures from the fused Triton kernel (CUDA; on CPU only under TRITON_INTERPRET=1)."""
    return fold_triton(*device_inputs(shingles, perms, device)).cpu().numpy().view(np.uint32)


def device_inputs(shingles: Shingles, perms: Permutations, device: str) -> tuple[torch.Tensor, ...]:
    """The kernel's inputs on `device`: hashes, document offsets, a, b (uint64 bits in int64 tensors).
    The hashes go as they are (no pass over them on the CPU); the kernel takes their low 32 bits."""
    offsets = np.zeros(len(shingles.counts) + 1, dtype=np.int64)
    np.cumsum(shingles.counts, out=offsets[1:])
    arrays = (shingles.hashes.view(np.int64), offsets, perms.a.view(np.int64), perms.b.view(np.int64))
    return tuple(torch.from_numpy(np.ascontiguousarray(v)).to(device) for v in arrays)


# One program computes TRITON_SHINGLES shingles x TRITON_PERMS permutations per step, for one document.
# 16 permutations leave no lane idle for 112 (the default) and 12 of 272 for 260 (the nemo preset).
TRITON_SHINGLES = 128
TRITON_PERMS = 16


def fold_triton(
    hashes: torch.Tensor,
    offsets: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    shingles_per_step: int = TRITON_SHINGLES,
    perms_per_step: int = TRITON_PERMS,
) -> torch.Tensor:
    """(documents, permutations) int32 tensor holding the uint32 signatures' bits, on the inputs' device."""
    kernel = _triton_fold()
    if kernel is None:
        raise RuntimeError(
            "dedup_fuzzy: the Triton MinHash kernel needs `triton` (torch's CUDA builds ship it)"
        )
    n_docs, num_perm = len(offsets) - 1, len(a)
    out = torch.empty((n_docs, num_perm), dtype=torch.int32, device=hashes.device)
    if n_docs:
        grid = (n_docs, -(-num_perm // perms_per_step))
        kernel[grid](hashes, offsets, a, b, out, num_perm, BLOCK_S=shingles_per_step, BLOCK_P=perms_per_step)
    return out


@lru_cache(maxsize=1)
def _triton_fold():
    """The Triton kernel, or None (with a warning) where Triton is missing."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        warnings.warn(
            "dedup_fuzzy: triton is not installed; MinHash on the GPU falls back to the eager torch "
            "kernel (the same signatures, many times slower)",
            stacklevel=3,
        )
        return None

    @triton.jit
    def fold(
        hash_ptr, offsets_ptr, a_ptr, b_ptr, out_ptr, num_perm, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr
    ):
        doc = tl.program_id(0)
        perm = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        perm_ok = perm < num_perm
        a = tl.load(a_ptr + perm, mask=perm_ok, other=0).to(tl.uint64, bitcast=True)
        b = tl.load(b_ptr + perm, mask=perm_ok, other=0).to(tl.uint64, bitcast=True)
        start = tl.load(offsets_ptr + doc)
        end = tl.load(offsets_ptr + doc + 1)
        empty = tl.full([BLOCK_S, BLOCK_P], 0xFFFFFFFF, tl.uint32)
        # An elementwise running minimum, reduced across shingles once at the end.
        best = empty
        for first in range(start, end, BLOCK_S):
            shingle = first + tl.arange(0, BLOCK_S)
            live = shingle < end
            h = tl.load(hash_ptr + shingle, mask=live, other=0).to(tl.uint64, bitcast=True) & 0xFFFFFFFF
            x = h[:, None] * a[None, :] + b[None, :]  # uint64: wraps mod 2^64, as in datasketch
            y = (x & 0x1FFFFFFFFFFFFFFF) + (x >> 61)
            y += (y + 1) >> 61  # less p once when y >= p: see minhash.signatures_numba
            best = tl.minimum(best, tl.where(live[:, None], y.to(tl.uint32), empty))
        signature = tl.min(best, axis=0).to(tl.int32, bitcast=True)
        tl.store(out_ptr + doc.to(tl.int64) * num_perm + perm, signature, mask=perm_ok)

    return fold


def signatures_eager(
    shingles: Shingles, perms: Permutations, device: str, block: int = GPU_BLOCK
) -> np.ndarray:
    """Signatures from the eager torch kernel (`permute`), on any torch device."""
    n_docs = len(shingles.counts)
    a, b = _limbs(perms.a, device), _limbs(perms.b, device)
    out = torch.full((n_docs, perms.num_perm), int(EMPTY), dtype=torch.int64, device=device)
    inputs = torch.from_numpy((shingles.hashes & np.uint64(_LOW32)).astype(np.int64))
    doc_of = torch.repeat_interleave(torch.arange(n_docs), torch.from_numpy(shingles.counts))
    for start in range(0, len(inputs), block):
        h = inputs[start : start + block].to(device)
        docs = doc_of[start : start + block].to(device)
        r = permute(h, a, b)
        out.scatter_reduce_(0, docs[:, None].expand_as(r), r, reduce="amin")
    return out.cpu().numpy().astype(np.uint32)
