"""`read_parquet`: read an existing dataset (Parquet, or JSON lines, gzipped or not) as the pipeline input.

For pipelines that start from text that is already extracted, such as `curate tokenize` on a dataset
written by an earlier run. The documents keep all their columns, and every row is kept but one whose
`text` is missing or no string (a JSON null or number): that is no document, and is dropped as `no_text`
(the stages after would each fail on it, or take every such row for a copy of the others).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from curate.registry import register
from curate.stage import ShardContext, SourceStage, StageConfig, StageResult

NO_TEXT = "no_text"
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")


class ReadParquetConfig(StageConfig):
    batch_size: int = Field(2000, gt=0, description="Rows per batch, bounding memory on big files.")
    columns: list[str] | None = Field(None, description="Columns to read (default: all); must include text.")

    @field_validator("columns")
    @classmethod
    def _has_text(cls, columns: list[str] | None) -> list[str] | None:
        if columns is not None and "text" not in columns:
            raise ValueError(f"{columns} lacks 'text', which every stage reads; add it, e.g. [id, text]")
        return columns


@register
class ReadParquet(SourceStage):
    """Reads Parquet or JSONL(.gz) files with a `text` column into batches of documents."""

    name = "read_parquet"
    Config = ReadParquetConfig
    input_suffixes = (".parquet", *JSONL_SUFFIXES)

    def read(self, path: str, ctx: ShardContext) -> Iterator[StageResult]:
        batches = self._parquet(path) if path.endswith(".parquet") else self._jsonl(path)
        for batch in batches:
            if "text" not in batch.columns:
                raise ValueError(f"{path}: no 'text' column (columns: {', '.join(map(str, batch.columns))})")
            batch = batch.reset_index(drop=True)
            reasons = batch["text"].map(lambda text: None if isinstance(text, str) else NO_TEXT)
            yield StageResult.split(batch, reasons)

    def _parquet(self, path: str) -> Iterator[pd.DataFrame]:
        file = pq.ParquetFile(path)
        # pyarrow leaves out a listed column the file lacks without a word.
        self._check_columns(path, file.schema_arrow.names)
        for batch in file.iter_batches(batch_size=self.config.batch_size, columns=self.config.columns):
            yield batch.to_pandas()

    def _jsonl(self, path: str) -> Iterator[pd.DataFrame]:
        # dtype=False: ids like "007" or dates stay the strings they are in the file.
        with pd.read_json(path, lines=True, chunksize=self.config.batch_size, dtype=False) as reader:
            for chunk in reader:
                if self.config.columns is None:
                    yield chunk
                    continue
                self._check_columns(path, chunk.columns)
                yield chunk[self.config.columns]

    def _check_columns(self, path: str, present) -> None:
        missing = [c for c in self.config.columns or () if c not in set(present)]
        if missing:
            raise ValueError(
                f"{path}: no column {missing[0]!r} (listed in columns; it has {', '.join(map(str, present))})"
            )
