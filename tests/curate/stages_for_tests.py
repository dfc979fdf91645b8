"""Stages that misbehave on purpose, named in test pipelines as `tests.curate.stages_for_tests:<Class>`."""

from __future__ import annotations

import time

import pandas as pd
from pydantic import Field

from curate.stage import Stage, StageConfig, StageResult


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
