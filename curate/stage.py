"""Stage base classes: the contract every pipeline step follows.

A partition stage maps one batch (a pandas DataFrame of documents) to a `StageResult`: the rows it
keeps and the rows it drops, each dropped row carrying a `drop_reason`. The engine counts both, so a
stage never has to count anything itself, and a stage that loses rows is caught by the funnel check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

DROP_REASON = "drop_reason"


class StageError(Exception):
    """Raised by `process` when no document can get through (e.g. a configured column is missing).

    Other exceptions drop the rows that raise them; this one fails the run, with its message.
    """


class StageConfig(BaseModel):
    """Base of every stage's typed config: unknown keys are errors, values are type-checked."""

    # No inf/nan: `alpha: .inf` kept only perfect scores; a limit that should not apply is null.
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class ShardContext:
    """What a stage knows about the shard being processed."""

    shard_id: str
    source_path: str
    output_dir: Path


@dataclass
class StageResult:
    """The rows a stage kept and the rows it dropped (the latter with a `drop_reason` column)."""

    kept: pd.DataFrame
    dropped: pd.DataFrame

    @classmethod
    def split(cls, batch: pd.DataFrame, reasons: pd.Series) -> StageResult:
        """Split `batch` by `reasons`: rows whose reason is missing/empty are kept, others dropped."""
        reasons = reasons.reindex(batch.index)
        drop = reasons.notna() & (reasons.astype(str) != "")
        kept = batch.loc[~drop].reset_index(drop=True)
        dropped = batch.loc[drop].assign(**{DROP_REASON: reasons.loc[drop].astype(str)})
        return cls(kept=kept, dropped=dropped.reset_index(drop=True))

    @classmethod
    def keep_all(cls, batch: pd.DataFrame) -> StageResult:
        return cls(kept=batch, dropped=batch.iloc[0:0].assign(**{DROP_REASON: pd.Series(dtype=str)}))


class Stage:
    """A pipeline step. Subclasses set `name`, `Config`, and implement `process`."""

    name: ClassVar[str]
    kind: ClassVar[str] = "partition"  # "source", "partition" or "global"
    Config: ClassVar[type[StageConfig]] = StageConfig
    # The config key naming the directory this stage writes under output.dir, if any; the config
    # loader checks that it stays inside and is no other stage's.
    output_key: ClassVar[str | None] = None

    def __init__(self, config: StageConfig) -> None:
        self.config = config

    def start_shard(self, ctx: ShardContext) -> None:
        """Called before the first batch of a shard (sinks open their files here)."""

    def process(self, batch: pd.DataFrame) -> StageResult:
        raise NotImplementedError

    def finish_shard(self) -> None:
        """Called after the last batch of a shard (sinks commit their files here)."""


class SourceStage(Stage):
    """First stage of a pipeline: turns one input file into batches of documents."""

    kind: ClassVar[str] = "source"
    # The file names it reads, by ending (None: any file, as warc_ingest, which counts an unreadable one
    # and goes on); an input file of another type fails the config before any work starts.
    input_suffixes: ClassVar[tuple[str, ...] | None] = None

    def read(self, path: str, ctx: ShardContext) -> Iterator[StageResult]:
        """Yield batches read from `path`; every input record ends up kept or dropped with a reason."""
        raise NotImplementedError


class FilterStage(Stage):
    """A filter splits `score` (columns stored on the batch) from `keep` (a drop reason per row).

    Scores are kept as `score_<...>` columns so thresholds can be re-tuned without recomputing.
    """

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Return one column per score, indexed like `batch`."""
        raise NotImplementedError

    def keep(self, scores: pd.DataFrame) -> pd.Series:
        """Return a drop reason per row (None or "" keeps the row)."""
        raise NotImplementedError

    def process(self, batch: pd.DataFrame) -> StageResult:
        if batch.empty:
            return StageResult.keep_all(batch)
        scores = self.score(batch)
        batch = pd.concat([batch, scores], axis=1)
        return StageResult.split(batch, self.keep(scores))


class GlobalStage(Stage):
    """A stage that needs the whole dataset (dedup, tokenizer training): a barrier in the plan.

    `run` gets a `curate.global_run.GlobalContext` (the Dask client, the previous segment's parts in
    shard order, a work directory) and must write one output part per shard when asked, plus return
    its counters. It runs in phases as Dask tasks; no single task may hold the whole dataset.
    """

    kind: ClassVar[str] = "global"

    def run(self, ctx: Any) -> Any:
        raise NotImplementedError


def first_failing(checks: list[tuple[str, pd.Series]], index: pd.Index) -> pd.Series:
    """The first named check that fails for each row, or None: `checks` are (reason, failed_mask)."""
    reasons = pd.Series([None] * len(index), index=index, dtype=object)
    for reason, failed in reversed(checks):
        reasons = reasons.mask(failed.reindex(index, fill_value=False).astype(bool), reason)
    return reasons


def stage_params(config: StageConfig) -> dict[str, Any]:
    """The config as plain JSON-able values (used for fingerprints and stats)."""
    return config.model_dump(mode="json")
