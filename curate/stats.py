"""Per-stage counters and the funnel check: in = kept + Σ dropped, for every stage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class FunnelError(RuntimeError):
    """Documents were lost or invented: a stage's counts do not add up."""


def content_bytes(batch: pd.DataFrame) -> int:
    """UTF-8 bytes of the document content (`text`, or `html` before extraction)."""
    for column in ("text", "html"):
        if column in batch.columns and batch[column].notna().any():
            values = pa.array(batch[column], type=pa.large_string(), from_pandas=True)
            return int(pc.sum(pc.binary_length(values)).as_py() or 0)
    return 0


@dataclass
class StageCounter:
    """What one stage did on one shard (or, summed, on the whole run)."""

    id: str
    stage: str
    docs_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0

    def add(
        self, docs_in: int, kept: pd.DataFrame, dropped: pd.DataFrame, bytes_in: int, seconds: float
    ) -> None:
        self.docs_in += docs_in
        self.kept += len(kept)
        if len(dropped):
            self.dropped.update(dropped["drop_reason"].value_counts().to_dict())
        self.bytes_in += bytes_in
        self.bytes_out += content_bytes(kept)
        self.seconds += seconds

    def merge(self, other: StageCounter) -> None:
        self.docs_in += other.docs_in
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.seconds += other.seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.id,
            "stage": self.stage,
            "in": self.docs_in,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "seconds": round(self.seconds, 6),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageCounter:
        return cls(
            id=data["name"],
            stage=data["stage"],
            docs_in=data["in"],
            kept=data["kept"],
            dropped=Counter(data["dropped"]),
            bytes_in=data["bytes_in"],
            bytes_out=data["bytes_out"],
            seconds=data["seconds"],
        )


def check_funnel(counters: list[StageCounter]) -> None:
    """Raise FunnelError unless every stage has in = kept + Σ dropped and passes its kept on.

    `counters` are the stages in pipeline order; a stage's input must be its predecessor's output.
    """
    problems = []
    for i, c in enumerate(counters):
        total = c.kept + sum(c.dropped.values())
        if c.docs_in != total:
            problems.append(
                f"stage {c.id!r}: in={c.docs_in} but kept+dropped={total} ({c.docs_in - total:+d} lost)"
            )
        if i and c.docs_in != counters[i - 1].kept:
            prev = counters[i - 1]
            problems.append(f"stage {c.id!r}: in={c.docs_in} but {prev.id!r} kept {prev.kept}")
    if problems:
        raise FunnelError("funnel check failed: " + "; ".join(problems))
