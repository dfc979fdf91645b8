"""The MinHash permutations as a torch kernel, for GPUs: the same bits as `minhash.signatures_numpy`.

torch has no usable uint64 arithmetic (add, shift, compare and min are not implemented for it), and
int64 overflow is undefined in C++, so the kernel never overflows: `a * h` (a < 2^61, h < 2^32) is
rebuilt from 32- and 16-bit limbs whose partial products stay below 2^61, giving the high and low 32
bits of `(a * h + b) mod 2^64` exactly; the reduction mod 2^61 - 1 then works on values below 2^63.
The tests run this kernel on the CPU device against the numpy path (itself checked against
datasketch), and on a GPU when there is one.
"""

from __future__ import annotations

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
