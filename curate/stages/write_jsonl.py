"""`write_jsonl`: write the documents that reach this point as gzipped JSON lines (one file per shard)."""

from __future__ import annotations

from pydantic import Field

from curate.dataset_sink import DatasetSink, SinkConfig
from curate.registry import register


class WriteJsonlConfig(SinkConfig):
    path: str = Field("dataset_jsonl", description="Directory under the output dir.")


@register
class WriteJsonl(DatasetSink):
    """JSON lines writer, `part-<shard>.jsonl.gz`; documents pass through unchanged."""

    name = "write_jsonl"
    Config = WriteJsonlConfig
    suffix = ".jsonl.gz"
