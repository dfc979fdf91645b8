"""Read one Megatron `.bin/.idx` pair, memory-mapped, after checking that the pair is consistent.

Every check names the file and what is wrong with it: a truncated `.bin`, a corrupt header, pointers that
do not follow from the lengths, document indices that go backwards. A shard that opens is safe to index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.shards.format import DTYPE_CODES, HEADER, MAGIC, VERSION, ShardFormatError, bin_path, idx_path


class IndexedShard:
    """A validated `.bin/.idx` pair: `shard[i]` is sequence i's tokens (a view into the memory map)."""

    def __init__(self, prefix: str | Path) -> None:
        prefix = Path(prefix)
        if prefix.suffix in (".bin", ".idx"):
            prefix = prefix.with_suffix("")
        self.prefix = prefix
        self.idx_path = idx_path(prefix)
        self.bin_path = bin_path(prefix)
        for path in (self.idx_path, self.bin_path):
            if not path.is_file():
                raise ShardFormatError(
                    f"{path}: missing (a shard is a .bin and an .idx with the same prefix)"
                )
        self._read_index()
        self._check_index()
        self._map_tokens()

    def _read_index(self) -> None:
        path = self.idx_path
        size = path.stat().st_size
        if size < HEADER.size:
            raise ShardFormatError(
                f"{path}: {size} bytes, shorter than the {HEADER.size}-byte header (truncated)"
            )
        index = np.memmap(path, dtype=np.uint8, mode="r")
        magic, version, code, sequences, doc_entries = HEADER.unpack(index[: HEADER.size].tobytes())
        if magic != MAGIC:
            raise ShardFormatError(f"{path}: not a Megatron index: magic {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise ShardFormatError(f"{path}: index version {version}; only version {VERSION} is supported")
        if code not in DTYPE_CODES:
            raise ShardFormatError(
                f"{path}: unknown dtype code {code}; known codes are {sorted(DTYPE_CODES)}"
            )
        if doc_entries < 1:
            raise ShardFormatError(
                f"{path}: document-index count is 0; it must be the number of documents + 1"
            )
        expected = HEADER.size + sequences * (4 + 8) + doc_entries * 8
        if size != expected:
            raise ShardFormatError(
                f"{path}: {size} bytes, but its header promises {expected} ({sequences} sequences, "
                f"{doc_entries} document indices): truncated or corrupt",
            )
        self.dtype = DTYPE_CODES[code]
        offset = HEADER.size
        self.sequence_lengths = np.frombuffer(index, dtype="<i4", count=sequences, offset=offset)
        offset += sequences * 4
        self.sequence_pointers = np.frombuffer(index, dtype="<i8", count=sequences, offset=offset)
        offset += sequences * 8
        self.document_indices = np.frombuffer(index, dtype="<i8", count=doc_entries, offset=offset)

    def _check_index(self) -> None:
        path, lengths = self.idx_path, self.sequence_lengths
        if lengths.size and lengths.min() < 0:
            first = int(np.argmax(lengths < 0))
            raise ShardFormatError(f"{path}: sequence {first} has a negative length ({int(lengths[first])})")
        # Token offsets of every sequence start, plus the end: pointers must follow from the lengths.
        self._starts = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._starts[1:])
        expected = self._starts[:-1] * self.dtype.itemsize
        if not np.array_equal(self.sequence_pointers, expected):
            first = int(np.argmax(self.sequence_pointers != expected))
            raise ShardFormatError(
                f"{path}: sequence {first} points at byte {int(self.sequence_pointers[first])}, "
                f"but the lengths before it end at byte {int(expected[first])}: corrupt pointers",
            )
        docs = self.document_indices
        if docs[0] != 0:
            raise ShardFormatError(f"{path}: the first document index is {int(docs[0])}, not 0")
        if docs[-1] != lengths.size:
            raise ShardFormatError(
                f"{path}: the last document index is {int(docs[-1])}, but there are {lengths.size} sequences"
            )
        backwards = np.flatnonzero(np.diff(docs) < 0)
        if backwards.size:
            j = int(backwards[0])
            raise ShardFormatError(
                f"{path}: document index {j + 1} goes backwards ({int(docs[j])} → {int(docs[j + 1])})"
            )

    def _map_tokens(self) -> None:
        size = self.bin_path.stat().st_size
        expected = int(self._starts[-1]) * self.dtype.itemsize
        if size != expected:
            state = "truncated" if size < expected else "longer than its index (a .bin from another shard?)"
            raise ShardFormatError(
                f"{self.bin_path}: {size} bytes, but {self.idx_path.name} describes {int(self._starts[-1])} "
                f"{self.dtype.name} tokens = {expected} bytes: {state}",
            )
        # numpy cannot map an empty file; an empty shard is still a valid shard.
        self._tokens = (
            np.memmap(self.bin_path, dtype=self.dtype, mode="r") if size else np.zeros(0, dtype=self.dtype)
        )

    def __len__(self) -> int:
        return int(self.sequence_lengths.size)

    def __getitem__(self, i: int) -> np.ndarray:
        """Tokens of sequence `i` (negative indices count from the end)."""
        count = len(self)
        if not -count <= i < count:
            raise IndexError(f"sequence {i} out of range for {self.prefix} ({count} sequences)")
        i %= count
        return self._tokens[self._starts[i] : self._starts[i + 1]]

    @property
    def documents(self) -> int:
        return int(self.document_indices.size - 1)

    @property
    def tokens(self) -> int:
        return int(self._starts[-1])

    @property
    def doc_lengths(self) -> np.ndarray:
        """Tokens per document (the sum over its sequences; one sequence per document in curate's shards)."""
        return self._starts[self.document_indices[1:]] - self._starts[self.document_indices[:-1]]

    def document(self, j: int) -> np.ndarray:
        """All tokens of document `j`, its sequences back to back."""
        if not 0 <= j < self.documents:
            raise IndexError(f"document {j} out of range for {self.prefix} ({self.documents} documents)")
        seq = self.document_indices
        return self._tokens[self._starts[seq[j]] : self._starts[seq[j + 1]]]
