"""Which document is which: sortable document keys, and reading a shard's texts by key.

A key is `<id>\\0<shard:06d><row:010d>`. The NUL separator sorts below every character, so keys order
as their ids do and "the smallest key" of a group is the document with the smallest id (ties, a
repeated id, broken by position). The suffix lets any phase route a row to the shard that holds the
document and read that document back by row, without a lookup table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_SUFFIX = 17  # separator + 6 shard digits + 10 row digits
BATCH_DOCS = 1000  # documents per batch when a phase streams a shard


def doc_keys(ids: pa.Array | pa.ChunkedArray, shard: int, first_row: int) -> np.ndarray:
    """Keys of the documents at rows first_row, first_row + 1, ... of shard `shard` (object array)."""
    if ids.null_count:
        raise ValueError("dedup needs an `id` on every document; some are missing")
    ids = ids.cast(pa.large_string())
    if len(ids) and pc.any(pc.match_substring(ids, "\0")).as_py():
        raise ValueError("document ids must not contain NUL characters (dedup keys use it as a separator)")
    rows = range(first_row, first_row + len(ids))
    return np.array(
        [f"{i}\0{shard:06d}{r:010d}" for i, r in zip(ids.to_pylist(), rows, strict=True)], dtype=object
    )


def key_shards(keys: pd.Series) -> np.ndarray:
    """The shard ordinal of each key."""
    return keys.str.slice(-16, -10).astype("int64").to_numpy()


def key_rows(keys: pd.Series) -> np.ndarray:
    """The row (within its shard's part) of each key."""
    return keys.str.slice(-10).astype("int64").to_numpy()


def key_ids(keys: pd.Series) -> pd.Series:
    """The document id of each key."""
    return keys.str.slice(0, -_SUFFIX)


def keyed_texts(part: Path, shard: int) -> Iterator[tuple[np.ndarray, pa.Array]]:
    """A shard's (keys, texts) in batches of BATCH_DOCS documents: memory bounded by the batch."""
    file = pq.ParquetFile(part)
    if file.metadata.num_rows == 0:
        return
    missing = {"id", "text"} - set(file.schema_arrow.names)
    if missing:
        raise ValueError(
            f"{part}: dedup needs the columns id and text; missing: {', '.join(sorted(missing))}"
        )
    first_row = 0
    for batch in file.iter_batches(batch_size=BATCH_DOCS, columns=["id", "text"]):
        yield doc_keys(batch.column("id"), shard, first_row), batch.column("text")
        first_row += batch.num_rows


def texts_at(part: Path, rows: np.ndarray) -> pa.Array:
    """The texts at `rows` of a shard's part, in that order."""
    texts = pq.read_table(part, columns=["text"]).column("text")
    return texts.take(pa.array(rows, pa.int64())).combine_chunks()
