"""The shared mechanics of the dataset writers: one part file per shard, committed at shard end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import Field, field_validator

from curate.part_files import PartWriter
from curate.stage import ShardContext, Stage, StageConfig, StageError, StageResult


class SinkConfig(StageConfig):
    path: str = Field("dataset", description="Directory under the output dir.")
    columns: list[str] | None = Field(None, description="Columns to write (default: all).")

    @field_validator("columns")
    @classmethod
    def _some_columns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list writes nothing; list the columns, or leave columns out for all")
        return value


class DatasetSink(Stage):
    """A pass-through stage that also appends every batch to `<output>/<path>/part-<shard><suffix>`."""

    suffix: str
    output_key = "path"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.writer: PartWriter | None = None

    def start_shard(self, ctx: ShardContext) -> None:
        path = Path(ctx.output_dir) / self.config.path / f"part-{ctx.shard_id}{self.suffix}"
        self.writer = PartWriter(path, columns=self.config.columns)

    def process(self, batch: pd.DataFrame) -> StageResult:
        # Documents that reach the writer carry every column the stages before it add (an empty
        # batch may lack score columns: filters skip it), so a column missing here is a config error.
        missing = [c for c in self.config.columns or [] if c not in batch.columns]
        if missing and not batch.empty:
            raise StageError(
                f"{self.name}: key 'columns': {', '.join(map(repr, missing))} not in the documents; "
                f"they have: {', '.join(batch.columns)}"
            )
        self.writer.write(batch)
        return StageResult.keep_all(batch)

    def finish_shard(self) -> None:
        self.writer.commit()
        self.writer = None
