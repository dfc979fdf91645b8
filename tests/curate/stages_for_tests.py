"""Stages that misbehave on purpose, named in test pipelines as `tests.curate.stages_for_tests:<Class>`."""

from __future__ import annotations

import statistics
import time

import pandas as pd
from pydantic import Field

from curate.global_run import GlobalContext, GlobalResult
from curate.stage import GlobalStage, Stage, StageConfig, StageResult
from curate.stats import StageCounter


class LoseRowsConfig(StageConfig):
    every: int = Field(2, description="Silently lose every n-th row.")


class LoseRows(Stage):
    """A buggy stage: returns fewer rows than it got, without a drop reason."""

    name = "lose_rows"
    Config = LoseRowsConfig

    def process(self, batch: pd.DataFrame) -> StageResult:
        return StageResult.keep_all(batch.iloc[:: self.config.every].reset_index(drop=True))


class SlowConfig(StageConfig):
    seconds_per_batch: float = Field(0.5, description="Sleep this long per batch.")


class Slow(Stage):
    """Passes documents through slowly, so a run can be killed half-way."""

    name = "slow"
    Config = SlowConfig

    def process(self, batch: pd.DataFrame) -> StageResult:
        time.sleep(self.config.seconds_per_batch)
        return StageResult.keep_all(batch)


class RaiseOnConfig(StageConfig):
    needle: str = Field("boom", description="Raise on documents whose URL contains this.")


class RaiseOn(Stage):
    """Raises ValueError on some documents, as a buggy third-party stage might."""

    name = "raise_on"
    Config = RaiseOnConfig

    def process(self, batch: pd.DataFrame) -> StageResult:
        if batch["url"].str.contains(self.config.needle, regex=False).any():
            raise ValueError("cannot handle this document")
        return StageResult.keep_all(batch)


def _text_lengths(path) -> list[int]:
    return pd.read_parquet(path, columns=["text"])["text"].str.len().tolist()


def _keep_at_least(job) -> dict:
    path, out_path, threshold = job
    batch = pd.read_parquet(path)
    kept = batch[batch["text"].str.len() >= threshold]
    if out_path is not None:
        kept.to_parquet(out_path, index=False)
    return {"in": len(batch), "kept": len(kept)}


class KeepLongHalf(GlobalStage):
    """A global stage: keeps documents at least as long as the median over the whole dataset."""

    name = "keep_long_half"

    def run(self, ctx: GlobalContext) -> GlobalResult:
        shard_ids = [sid for sid, _ in ctx.parts]
        lengths = ctx.map(_text_lengths, [p for _, p in ctx.parts], "lengths", shard_ids)
        median = statistics.median(n for shard in lengths for n in shard)
        jobs = [(p, ctx.output_part(sid) if ctx.write_output else None, median) for sid, p in ctx.parts]
        counts = ctx.map(_keep_at_least, jobs, "filter", shard_ids)
        counter = StageCounter(id=ctx.stage_id, stage=self.name)
        counter.docs_in = sum(c["in"] for c in counts)
        counter.kept = sum(c["kept"] for c in counts)
        counter.dropped["shorter_than_median"] = counter.docs_in - counter.kept
        return GlobalResult(counter=counter, details={"median": median})
