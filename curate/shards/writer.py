"""Write one Megatron `.bin/.idx` pair: documents streamed into `.bin`, the index written at the end.

One sequence per document, so the document indices are 0 … S. Both files are written under temporary
names and renamed on `close()`, `.idx` last: a killed writer never leaves a pair that looks complete.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from curate.shards.format import HEADER, MAGIC, VERSION, ShardFormatError, bin_path, dtype_code, idx_path

_COPY_CHUNK = 16 << 20
_INT32_MAX = np.iinfo(np.int32).max


def write_index(path: Path, dtype: np.dtype, sequence_lengths: np.ndarray) -> None:
    """Write an `.idx` for sequences of these lengths (tokens of `dtype`), one sequence per document."""
    lengths = np.asarray(sequence_lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > _INT32_MAX):
        raise ShardFormatError(f"{path}: sequence lengths must be in 0..{_INT32_MAX} (int32 in the index)")
    count = lengths.size
    pointers = np.zeros(count, dtype="<i8")
    np.cumsum(lengths[:-1] * np.dtype(dtype).itemsize, out=pointers[1:])
    with open(path, "wb") as fh:
        fh.write(HEADER.pack(MAGIC, VERSION, dtype_code(dtype), count, count + 1))
        fh.write(lengths.astype("<i4").data)
        fh.write(pointers.data)
        fh.write(np.arange(count + 1, dtype="<i8").data)


class IndexedShardWriter:
    """Append documents to `<prefix>.bin`; `close()` writes `<prefix>.idx` and publishes the pair."""

    def __init__(self, prefix: Path, dtype: np.dtype) -> None:
        self.prefix = prefix
        self.dtype = np.dtype(dtype).newbyteorder("<")
        dtype_code(self.dtype)  # fail before writing anything if Megatron has no code for it
        if self.dtype.kind not in "iu":
            raise ShardFormatError(f"{bin_path(prefix)}: tokens need an integer dtype, not {self.dtype.name}")
        self.documents = 0
        self.tokens = 0
        self._lengths: list[np.ndarray] = []
        prefix.parent.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex
        self._tmp_bin = prefix.with_name(f"{prefix.name}.bin.tmp-{tag}")
        self._tmp_idx = prefix.with_name(f"{prefix.name}.idx.tmp-{tag}")
        self._bin = open(self._tmp_bin, "wb")  # noqa: SIM115 - closed in close()/abort()

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents given as all their tokens back to back plus each document's length."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if int(lengths.sum()) != tokens.size:
            raise ShardFormatError(
                f"{bin_path(self.prefix)}: {tokens.size} tokens, "
                f"but the lengths add up to {int(lengths.sum())}"
            )
        self._check_range(tokens)
        self._bin.write(np.ascontiguousarray(tokens, dtype=self.dtype).data)
        self._lengths.append(lengths)
        self.documents += lengths.size
        self.tokens += tokens.size

    def add_bin_range(self, source: Path, start: int, lengths: np.ndarray) -> None:
        """Append documents copied from another `.bin` of the same dtype, from byte `start` on (a merge)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        remaining = int(lengths.sum()) * self.dtype.itemsize
        with open(source, "rb") as src:
            src.seek(start)
            while remaining:
                chunk = src.read(min(_COPY_CHUNK, remaining))
                if not chunk:
                    raise ShardFormatError(f"{source}: ends {remaining} bytes early (truncated part)")
                self._bin.write(chunk)
                remaining -= len(chunk)
        self._lengths.append(lengths)
        self.documents += lengths.size
        self.tokens += int(lengths.sum())

    def close(self) -> None:
        """Write the index and rename both files to their final names (`.bin` first, `.idx` last)."""
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        write_index(self._tmp_idx, self.dtype, lengths)
        os.replace(self._tmp_bin, bin_path(self.prefix))
        os.replace(self._tmp_idx, idx_path(self.prefix))

    def abort(self) -> None:
        self._bin.close()
        self._tmp_bin.unlink(missing_ok=True)
        self._tmp_idx.unlink(missing_ok=True)

    def __enter__(self) -> IndexedShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _check_range(self, tokens: np.ndarray) -> None:
        # A silent wrap-around (70,000 → 4,464 in uint16) would corrupt training data without a trace.
        if not tokens.size:
            return
        info = np.iinfo(self.dtype)
        low, high = int(tokens.min()), int(tokens.max())
        if low < info.min or high > info.max:
            bad = high if high > info.max else low
            raise ShardFormatError(
                f"{bin_path(self.prefix)}: token id {bad} does not fit {self.dtype.name} "
                f"({info.min}..{info.max}); the vocabulary is larger than the dtype chosen for it"
            )
