"""Fixed 64-bit hashes: xxh64 of strings, and a murmur3-finalizer chain over integer sequences.

Nothing here depends on the process (no per-process seeds, unlike Python's `hash`), so values computed
by different workers, runs and machines agree. numpy's uint64 arrays wrap on overflow, which is the
modulo 2^64 arithmetic the mixing relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xxhash

_SHIFT = np.uint64(33)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
# Odd, so multiplying by it is a bijection mod 2^64: chaining loses no information before the mix.
_STEP = np.uint64(0x9E3779B97F4A7C15)
CHAIN_START = np.uint64(0x2545F4914F6CDD1D)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: an avalanching bijection on uint64 arrays."""
    x = x ^ (x >> _SHIFT)
    x = x * _MIX1
    x ^= x >> _SHIFT
    x *= _MIX2
    x ^= x >> _SHIFT
    return x


def chain(state: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fold one more element into running hashes; order-sensitive (a b ≠ b a)."""
    return fmix64(state * _STEP + values.astype(np.uint64, copy=False))


def hash_strings(values: Iterable[str]) -> np.ndarray:
    """xxh64 (seed 0) of each string's UTF-8 bytes."""
    return np.fromiter((xxhash.xxh64_intdigest(v.encode()) for v in values), dtype=np.uint64)
