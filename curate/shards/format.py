"""The Megatron-LM `MMapIndexedDataset` layout, as megatron-core's `IndexedDataset` reads it.

`.idx`: magic `MMIDIDX\\x00\\x00`, `<Q` version 1, `<B` dtype code, `<Q` sequence count S, `<Q` document-index
count D, then int32[S] sequence lengths, int64[S] byte pointers into `.bin`, int64[D] document indices;
little-endian, no padding. `.bin`: the tokens of all sequences back to back.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# magic, version, dtype code, sequence count, document-index count: 34 bytes.
HEADER = struct.Struct("<9sQBQQ")
# Megatron's `DType` enum; the codes are part of the file format.
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<i1"),
    3: np.dtype("<i2"),
    4: np.dtype("<i4"),
    5: np.dtype("<i8"),
    6: np.dtype("<f8"),
    7: np.dtype("<f4"),
    8: np.dtype("<u2"),
}
# Megatron's preprocess_data.py stores tokens as uint16 only below this vocabulary size (DType.optimal_dtype).
UINT16_VOCAB_LIMIT = 65_500


class ShardFormatError(ValueError):
    """A shard file that cannot be written or read as it is; the message names the file and the problem."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The token dtype Megatron picks for a vocabulary: uint16 below 65,500 entries, else int32."""
    return DTYPE_CODES[8] if vocab_size < UINT16_VOCAB_LIMIT else DTYPE_CODES[4]


def dtype_code(dtype: np.dtype) -> int:
    """Megatron's code for `dtype` (raises for a dtype the format has no code for)."""
    wanted = np.dtype(dtype).newbyteorder("<")
    for code, known in DTYPE_CODES.items():
        if known == wanted:
            return code
    raise ShardFormatError(
        f"dtype {wanted} has no Megatron code; use one of {sorted(map(str, DTYPE_CODES.values()))}"
    )


def bin_path(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".bin")


def idx_path(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".idx")
