"""MinHash signatures on CPU with numpy, bit-identical to datasketch's `MinHash(scheme="legacy")`.

Each permutation is `((a * h + b) mod 2^64) mod p`, masked to 32 bits, with p the Mersenne prime
2^61 - 1 and (a, b) drawn from `numpy.random.RandomState(seed)` in datasketch's order. Why each part:

- `h` is the low 32 bits of the 64-bit shingle hash: datasketch's legacy scheme takes 32-bit inputs.
  (The full 64 bits are kept for exact Jaccard verification, where a collision would count as a
  shared shingle.)
- The `mod 2^64` is datasketch's, not ours: it computes `a * h + b` in uint64, which wraps before the
  reduction mod p. We reproduce it rather than compute the textbook `(a * h + b) mod p`, so that our
  signatures and estimates are datasketch's numbers exactly (the tests compare them bit for bit, and
  the estimates against true Jaccard similarity).
- datasketch 2.0 made another scheme (`affine32`) its default; we keep the Mersenne-prime one, its
  only scheme through 1.x, so sketches made with earlier datasketch versions stay comparable.

The reduction mod p uses p = 2^61 - 1: x mod p = (x & p) + (x >> 61), less p once if that reaches p,
which avoids a 64-bit division per element.

Three implementations give the same bits: `signatures_numba`, the CPU path (a numba-compiled loop, ~16x
datasketch's `MinHash.bulk` per core: bench/minhash_throughput.py); `signatures_numpy`, the plain
numpy reference the tests hold the others to (~2x datasketch: each of its ~10 array passes costs
about what the whole compiled loop does); and `minhash_torch` on a GPU.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from curate.dedup.shingles import Shingles

Device = Literal["auto", "cpu", "cuda"]
MERSENNE_61 = (1 << 61) - 1
EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's initial value: what a document without shingles keeps
_P = np.uint64(MERSENNE_61)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT61 = np.uint64(61)
# Shingles per block: block x permutations uint64 temporaries stay a few MB, in cache.
CPU_BLOCK = 512


@dataclass(frozen=True)
class Permutations:
    """The (a, b) pairs of `num_perm` hash permutations, as datasketch's legacy scheme seeds them."""

    a: np.ndarray  # uint64, in [1, p)
    b: np.ndarray  # uint64, in [0, p)

    @property
    def num_perm(self) -> int:
        return len(self.a)


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> Permutations:
    """The permutations of `datasketch.MinHash(num_perm, seed, scheme="legacy")`, drawn in its order."""
    gen = np.random.RandomState(seed)
    pairs = np.array(
        [
            (gen.randint(1, MERSENNE_61, dtype=np.uint64), gen.randint(0, MERSENNE_61, dtype=np.uint64))
            for _ in range(num_perm)
        ],
        dtype=np.uint64,
    )
    return Permutations(a=pairs[:, 0].copy(), b=pairs[:, 1].copy())


def signatures_numba(shingles: Shingles, perms: Permutations) -> np.ndarray:
    """One uint32 signature row per document, as `signatures_numpy`, from a compiled loop (the CPU path)."""
    n_docs = len(shingles.counts)
    out = np.full((n_docs, perms.num_perm), EMPTY, dtype=np.uint32)
    offsets = shingles.offsets()
    _compiled_fold()(np.ascontiguousarray(shingles.hashes, dtype=np.uint64), offsets, perms.a, perms.b, out)
    return out


@lru_cache(maxsize=1)
def _compiled_fold():
    """The numba kernel, compiled (or loaded from numba's cache) on first use: importing numba costs
    ~0.4 s, which processes that never compute signatures on CPU should not pay."""
    import numba

    one, shift61, low32 = np.uint64(1), np.uint64(61), np.uint64(0xFFFFFFFF)

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def fold(hashes, offsets, a, b, out):  # pragma: no cover - runs compiled
        # Per shingle, all permutations in one contiguous inner loop: LLVM vectorizes it (uint64
        # multiply, add, shifts; the row minimum in uint32 lanes) and `out[d]` stays in L1.
        for d in range(offsets.shape[0] - 1):
            row = out[d]
            for i in range(offsets[d], offsets[d + 1]):
                h = hashes[i] & low32
                for p in range(a.shape[0]):
                    x = a[p] * h + b[p]  # wraps mod 2^64, as in datasketch
                    y = (x & _P) + (x >> shift61)  # < p + 8, and = x mod p unless it is >= p
                    # Less p once when y >= p, i.e. when y + 1 reaches 2^61: then (y - p) = (y + 1)
                    # mod 2^61, and since p's 32 low bits are all ones, the low 32 bits of y - p are
                    # those of y + 1. One add and shift instead of a compare and select.
                    y += (y + one) >> shift61
                    row[p] = min(row[p], np.uint32(y & low32))

    return fold


def signatures_numpy(shingles: Shingles, perms: Permutations, block: int = CPU_BLOCK) -> np.ndarray:
    """One uint32 signature row per document: the minimum of each permutation over its shingles.
    Plain numpy, the reference that `signatures_numba` and the GPU kernels are tested against."""
    n_docs = len(shingles.counts)
    out = np.full((n_docs, perms.num_perm), EMPTY, dtype=np.uint32)
    doc_of = np.repeat(np.arange(n_docs), shingles.counts)
    inputs = (shingles.hashes & _LOW32)[:, None]
    a, b = perms.a[None, :], perms.b[None, :]
    for start in range(0, len(inputs), block):
        x = inputs[start : start + block] * a  # wraps mod 2^64, as in datasketch
        x += b
        r = x & _P
        x >>= _SHIFT61
        r += x
        np.subtract(r, _P, out=r, where=r >= _P)
        r &= _LOW32
        _fold_min(out, doc_of[start : start + block], r.astype(np.uint32))
    return out


def _fold_min(out: np.ndarray, docs: np.ndarray, values: np.ndarray) -> None:
    """out[doc] = min(out[doc], values of that doc's rows); a block holds runs of whole or partial docs."""
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    rows = docs[starts]
    out[rows] = np.minimum(out[rows], np.minimum.reduceat(values, starts, axis=0))


def resolve_device(requested: Device) -> str:
    """`cpu` or `cuda` for this worker; `cuda` requested without a visible GPU is an error, not a fallback."""
    if requested == "cpu":
        return "cpu"
    # Importing torch costs seconds and hundreds of MB per worker; without an NVIDIA (or ROCm) device
    # node there is no GPU for it to find, so `auto` answers without importing it.
    if requested == "auto" and not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd")):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError(
            "dedup_fuzzy: device 'cuda' but torch sees no GPU on this worker; use 'auto' or 'cpu'"
        )
    return "cpu"


def signatures(shingles: Shingles, perms: Permutations, device: str) -> np.ndarray:
    """Signatures on `device` (from `resolve_device`); both paths give the same bits."""
    if device == "cpu":
        return signatures_numba(shingles, perms)
    from curate.dedup.minhash_torch import signatures_torch

    return signatures_torch(shingles, perms, device)
