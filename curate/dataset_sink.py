"""The shared mechanics of the dataset writers: one part file per shard, committed at shard end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import Field

from curate.part_files import PartWriter
from curate.stage import ShardContext, Stage, StageConfig, StageResult


class SinkConfig(StageConfig):
    path: str = Field("dataset", description="Directory under the output dir.")
    columns: list[str] | None = Field(None, description="Columns to write (default: all).")


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
        self.writer.write(batch)
        return StageResult.keep_all(batch)

    def finish_shard(self) -> None:
        self.writer.commit()
        self.writer = None
