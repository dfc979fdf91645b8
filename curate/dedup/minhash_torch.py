"""MinHash on a GPU: the same bits as `minhash.signatures_numpy`.

On CUDA the work is one fused Triton kernel (`fold_triton`): a program per (document, 16 permutations)
walks the document's shingles in tiles, computes the permutations in uint64 registers (Triton has
wrapping uint64 multiply and logical shifts) and keeps a running minimum, so only the hashes in and the
signatures out touch GPU memory; `signatures_triton` streams the hashes in and the signatures out
through pinned buffers, overlapped with the kernel. Triton ships with torch's CUDA builds. Without it (and in the tests on
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

import sys
import warnings
from functools import lru_cache
from itertools import pairwise

import numpy as np
import torch

from curate.dedup.minhash import EMPTY, MERSENNE_61, Permutations
from curate.dedup.shingles import Shingles

# Shingles per block on a GPU: block x permutations int64 temporaries of a few hundred MB at most.
GPU_BLOCK = 1 << 17
_LOW16 = 0xFFFF
_LOW29 = (1 << 29) - 1
_LOW32 = 0xFFFFFFFF
# One program computes TRITON_SHINGLES shingles x TRITON_PERMS permutations per step, for one document.
# 16 permutations leave no lane idle for 112 (the default) and 12 of 272 for 260 (the nemo preset).
TRITON_SHINGLES = 32
TRITON_PERMS = 16
# Shingles per host-to-device chunk in `signatures_triton`: two pinned and two device buffers of 32 MB.
TRITON_CHUNK = 1 << 23


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


def signatures_triton(
    shingles: Shingles, perms: Permutations, device: str, chunk: int = TRITON_CHUNK
) -> np.ndarray:
    """Signatures from the fused Triton kernel, on a CUDA device.

    From host memory the copies, not the kernel, set the speed: the kernel signs 400,000 documents in
    ~9 ms, while their 630 MB of uint64 hashes crossed PCIe from pageable memory in ~250 ms. So only the
    low 32 bits the kernel reads travel (half the bytes), through pinned buffers (several times pageable
    memory's rate), in chunks of `chunk` shingles: while the GPU copies and signs chunk i, the host
    gathers chunk i+1's low halves into the other pinned buffer. The signatures come back into one pinned
    array, which the returned numpy array views."""
    n_docs, num_perm = len(shingles.counts), perms.num_perm
    signatures = torch.empty((n_docs, num_perm), dtype=torch.int32, pin_memory=True)
    if n_docs == 0:
        return signatures.numpy().view(np.uint32)
    offsets = shingles.offsets()
    low = torch.from_numpy(_low_halves(shingles.hashes))
    a, b = (torch.from_numpy(v.view(np.int64)).to(device) for v in (perms.a, perms.b))
    offsets_gpu = torch.from_numpy(offsets).to(device)
    bounds = _chunk_bounds(offsets, chunk)
    width, rows = int(np.diff(offsets[bounds]).max()), int(np.diff(bounds).max())
    staging = [torch.empty(width, dtype=torch.int32, pin_memory=True) for _ in range(2)]
    hashes_gpu = [torch.empty(width, dtype=torch.int32, device=device) for _ in range(2)]
    out_gpu = [torch.empty((rows, num_perm), dtype=torch.int32, device=device) for _ in range(2)]
    copied: list[torch.cuda.Event | None] = [None, None]  # each buffer's last host-to-device copy
    signed: list[torch.cuda.Event | None] = [None, None]  # the last kernel that read each device buffer
    compute, copier = torch.cuda.current_stream(device), torch.cuda.Stream(device)
    for i, (first, last) in enumerate(pairwise(bounds.tolist())):
        k, start, end = i % 2, int(offsets[first]), int(offsets[last])
        if copied[k] is not None:
            copied[k].synchronize()  # the pinned buffer's previous chunk has left
        staging[k][: end - start].copy_(low[start:end])
        if signed[k] is not None:
            copier.wait_event(signed[k])
        with torch.cuda.stream(copier):
            hashes_gpu[k][: end - start].copy_(staging[k][: end - start], non_blocking=True)
            copied[k] = copier.record_event()
        compute.wait_event(copied[k])
        out = out_gpu[k][: last - first]
        fold_triton(hashes_gpu[k], offsets_gpu[first : last + 1], a, b, out=out, base=start)
        signed[k] = compute.record_event()
        # On the compute stream: the next kernel to write out_gpu[k] waits for this copy.
        signatures[first:last].copy_(out, non_blocking=True)
    compute.synchronize()
    return signatures.numpy().view(np.uint32)


def _low_halves(hashes: np.ndarray) -> np.ndarray:
    """The low 32 bits of uint64 hashes, as a strided int32 view (no copy)."""
    words = hashes.view(np.int32).reshape(-1, 2)
    return words[:, 0 if sys.byteorder == "little" else 1]


def _chunk_bounds(offsets: np.ndarray, chunk: int) -> np.ndarray:
    """Document indices that cut the batch into runs of at most `chunk` shingles (a longer document is
    a run of its own)."""
    cuts = [0]
    n_docs = len(offsets) - 1
    while cuts[-1] < n_docs:
        first = cuts[-1]
        last = int(np.searchsorted(offsets, offsets[first] + chunk, side="right")) - 1
        cuts.append(min(max(last, first + 1), n_docs))
    return np.asarray(cuts, dtype=np.int64)


def device_inputs(shingles: Shingles, perms: Permutations, device: str) -> tuple[torch.Tensor, ...]:
    """The kernel's inputs on `device`: the hashes' low 32 bits, document offsets, a, b (uint64 bits in
    int64 tensors)."""
    arrays = (
        _low_halves(shingles.hashes),
        shingles.offsets(),
        perms.a.view(np.int64),
        perms.b.view(np.int64),
    )
    return tuple(torch.from_numpy(np.ascontiguousarray(v)).to(device) for v in arrays)


def fold_triton(
    hashes: torch.Tensor,
    offsets: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    shingles_per_step: int = TRITON_SHINGLES,
    perms_per_step: int = TRITON_PERMS,
    out: torch.Tensor | None = None,
    base: int = 0,
) -> torch.Tensor:
    """(documents, permutations) int32 tensor holding the uint32 signatures' bits, on the inputs' device.
    `hashes` holds the shingle hashes' low 32 bits (int32); document d's are hashes[offsets[d] - base :
    offsets[d + 1] - base]."""
    kernel = _triton_fold()
    if kernel is None:
        raise RuntimeError(
            "dedup_fuzzy: the Triton MinHash kernel needs `triton` (torch's CUDA builds ship it)"
        )
    n_docs, num_perm = len(offsets) - 1, len(a)
    if out is None:
        out = torch.empty((n_docs, num_perm), dtype=torch.int32, device=hashes.device)
    if n_docs:
        grid = (n_docs, -(-num_perm // perms_per_step))
        kernel[grid](
            hashes, offsets, a, b, out, num_perm, base, BLOCK_S=shingles_per_step, BLOCK_P=perms_per_step
        )
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
        hash_ptr,
        offsets_ptr,
        a_ptr,
        b_ptr,
        out_ptr,
        num_perm,
        base,
        BLOCK_S: tl.constexpr,
        BLOCK_P: tl.constexpr,
    ):
        doc = tl.program_id(0)
        perm = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        perm_ok = perm < num_perm
        a = tl.load(a_ptr + perm, mask=perm_ok, other=0).to(tl.uint64, bitcast=True)
        b = tl.load(b_ptr + perm, mask=perm_ok, other=0).to(tl.uint64, bitcast=True)
        start = tl.load(offsets_ptr + doc) - base
        end = tl.load(offsets_ptr + doc + 1) - base
        empty = tl.full([BLOCK_S, BLOCK_P], 0xFFFFFFFF, tl.uint32)
        # An elementwise running minimum, reduced across shingles once at the end.
        best = empty
        for first in range(start, end, BLOCK_S):
            shingle = first + tl.arange(0, BLOCK_S)
            live = shingle < end
            h = tl.load(hash_ptr + shingle, mask=live, other=0).to(tl.uint32, bitcast=True).to(tl.uint64)
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
