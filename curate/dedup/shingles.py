"""Shingles: the overlapping n-grams of a normalized text, each hashed to 64 bits.

Word shingles (default n=5) hash every word once with xxh64 and chain the n word hashes of each window
(`hashing.chain`); character shingles (NeMo Curator's preset, n=24) chain the n code points of each
window. Both run as n vectorized passes over a whole batch, never a Python loop per shingle. A text
shorter than n tokens is one shingle of all its tokens, so two identical short texts still match; an
empty text has no shingles (Jaccard similarity is undefined for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.hashing import CHAIN_START, chain, hash_strings

ShingleKind = Literal["word", "char"]


@dataclass(frozen=True)
class Shingles:
    """The shingle hashes of a batch: each document's hashes back to back, `counts[i]` of them for doc i."""

    hashes: np.ndarray  # uint64
    counts: np.ndarray  # int64, one per document

    def offsets(self) -> np.ndarray:
        """Where each document's hashes start, then the end: len(counts) + 1 int64 values."""
        offsets = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=offsets[1:])
        return offsets

    def per_document(self) -> list[np.ndarray]:
        """Each document's set of shingle hashes, sorted and unique."""
        bounds = np.cumsum(self.counts)[:-1]
        return [np.unique(part) for part in np.split(self.hashes, bounds)]


def shingle(normalized: pa.Array | pa.ChunkedArray, kind: ShingleKind, n: int) -> Shingles:
    """Shingle hashes of normalized texts (see `normalize.normalize_fuzzy`)."""
    if isinstance(normalized, pa.ChunkedArray):
        normalized = normalized.combine_chunks()
    tokens, lengths = _word_tokens(normalized) if kind == "word" else _char_tokens(normalized)
    return _windows(tokens, lengths, n)


def _word_tokens(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """xxh64 of every word, and the word count per text."""
    # Normalized texts separate words by exactly one space.
    words = pc.split_pattern(texts, " ")
    lengths = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    # Splitting "" yields [""]: an empty text has no words.
    lengths[pc.equal(pc.utf8_length(texts), 0).to_numpy(zero_copy_only=False)] = 0
    flat = pc.list_flatten(words)
    flat = flat.filter(pc.not_equal(flat, ""))
    # Hash each distinct word once; web text repeats its vocabulary a lot.
    encoded = pc.dictionary_encode(flat)
    word_hashes = hash_strings(encoded.dictionary.to_pylist())
    return word_hashes[encoded.indices.to_numpy(zero_copy_only=False)], lengths


def _char_tokens(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The code points of every text back to back, and the number of code points per text."""
    joined = "".join(texts.to_pylist()).encode("utf-32-le")
    lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.frombuffer(joined, dtype=np.uint32), lengths


def _windows(tokens: np.ndarray, lengths: np.ndarray, n: int) -> Shingles:
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    total = int(counts.sum())
    doc_start = np.cumsum(lengths) - lengths
    first_window = np.cumsum(counts) - counts
    starts = np.repeat(doc_start - first_window, counts) + np.arange(total, dtype=np.int64)
    span = np.repeat(np.minimum(lengths, n), counts)
    has_short = bool((span < n).any())
    hashes = np.full(total, CHAIN_START, dtype=np.uint64)
    for k in range(n):
        if not has_short:
            hashes = chain(hashes, tokens[starts + k])
            continue
        live = span > k
        mixed = chain(hashes, tokens[np.where(live, starts + k, starts)])
        hashes = np.where(live, mixed, hashes)
    return Shingles(hashes=hashes, counts=counts.astype(np.int64))


def jaccard(left: np.ndarray, right: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted, unique shingle-hash sets (0 when both are empty)."""
    shared = len(np.intersect1d(left, right, assume_unique=True))
    union = len(left) + len(right) - shared
    return shared / union if union else 0.0
