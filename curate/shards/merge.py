"""Concatenate part shards, in order, into output shards of at most `shard_size` bytes of tokens.

Planning reads only the parts' indices; writing copies byte ranges of their `.bin` files. A document is
never split: a new output file starts when the next document would push `.bin` past `shard_size`, and a
document larger than that gets a file of its own. The plan depends only on the parts, so the outputs are
byte-identical however many workers write them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.shards.format import ShardFormatError
from curate.shards.reader import IndexedShard
from curate.shards.writer import IndexedShardWriter


@dataclass(frozen=True)
class PartSlice:
    """Documents `first` … `first + count - 1` of one part shard."""

    part: Path
    first: int
    count: int


@dataclass(frozen=True)
class OutputFile:
    """One output shard: where it goes and the part slices it is made of, in order."""

    prefix: Path
    dtype: str
    slices: tuple[PartSlice, ...]


def output_name(prefix: str, index: int, total: int) -> str:
    """Megatron's naming keeps `_text_document`; the number appears only when there are several files."""
    return f"{prefix}_text_document" if total == 1 else f"{prefix}_{index:05d}_text_document"


def remove_outputs(out_dir: Path, prefix: str) -> None:
    """Delete the output shards of an earlier run with this prefix (a rerun may write fewer files)."""
    pattern = re.compile(rf"{re.escape(prefix)}(_\d{{5}})?_text_document\.(bin|idx)")
    for path in out_dir.glob(f"{prefix}_*text_document.*"):
        if pattern.fullmatch(path.name):
            path.unlink()


def plan_outputs(
    parts: list[Path], out_dir: Path, prefix: str, dtype: str, shard_size: int
) -> list[OutputFile]:
    """Split the parts' documents, in order, into output files of at most `shard_size` bytes of tokens."""
    itemsize = np.dtype(dtype).itemsize
    files: list[list[PartSlice]] = [[]]
    fill = 0
    for part in parts:
        shard = IndexedShard(part)
        if shard.dtype != np.dtype(dtype):
            raise ShardFormatError(f"{shard.idx_path}: tokens are {shard.dtype.name}, expected {dtype}")
        if len(shard) != shard.documents:
            raise ShardFormatError(f"{shard.idx_path}: a part must hold one sequence per document")
        ends = np.zeros(shard.documents + 1, dtype=np.int64)
        np.cumsum(shard.doc_lengths * itemsize, out=ends[1:])
        first = 0
        while first < shard.documents:
            # Documents first … stop-1 fit in the room left in the current file.
            stop = int(np.searchsorted(ends, ends[first] + shard_size - fill, side="right")) - 1
            if stop == first and fill == 0:
                stop = first + 1  # one document larger than shard_size: a file of its own
            if stop > first:
                files[-1].append(PartSlice(part=part, first=first, count=stop - first))
                fill += int(ends[stop] - ends[first])
                first = stop
            if first < shard.documents:
                files.append([])
                fill = 0
    return [
        OutputFile(prefix=out_dir / output_name(prefix, i, len(files)), dtype=dtype, slices=tuple(slices))
        for i, slices in enumerate(files)
    ]


def write_output(output: OutputFile) -> dict:
    """Write one output shard from its part slices; return its document and token counts."""
    with IndexedShardWriter(output.prefix, np.dtype(output.dtype)) as writer:
        for piece in output.slices:
            shard = IndexedShard(piece.part)
            lengths = shard.sequence_lengths[piece.first : piece.first + piece.count]
            writer.add_bin_range(shard.bin_path, int(shard.sequence_pointers[piece.first]), lengths)
    return {"prefix": output.prefix.name, "documents": writer.documents, "tokens": writer.tokens}
