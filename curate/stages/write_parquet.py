"""`write_parquet`: write the documents that reach this point as a Parquet dataset (one file per shard)."""

from __future__ import annotations

from curate.dataset_sink import DatasetSink, SinkConfig
from curate.registry import register


@register
class WriteParquet(DatasetSink):
    """Parquet dataset writer (zstd), `part-<shard>.parquet`; documents pass through unchanged."""

    name = "write_parquet"
    Config = SinkConfig
    suffix = ".parquet"
