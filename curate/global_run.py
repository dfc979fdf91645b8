"""What a global stage gets to work with, and how the engine runs and resumes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client
from rich.console import Console

from curate.dask_tasks import run_tasks
from curate.part_files import atomic_write_text
from curate.stats import StageCounter


@dataclass
class GlobalResult:
    """A global stage's counters, plus stage-specific figures (candidate pairs, components, ...)."""

    counter: StageCounter
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GlobalContext:
    """The Dask client, the previous segment's parts (in shard order) and where to write."""

    client: Client
    stage_id: str
    parts: list[tuple[str, Path]]
    work_dir: Path
    output_dir: Path
    write_output: bool
    rejects_dir: Path | None
    console: Console
    retries: int
    pipeline_sha256: str  # recorded by stages whose outputs outlive the run (shard metadata)
    backend: str = "pandas"  # the pipeline's `backend`, resolved on each worker (curate.backend)

    def output_part(self, shard_id: str) -> Path:
        """Where the part for `shard_id` goes, for the next segment to read."""
        return self.work_dir / f"part-{shard_id}.parquet"

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], phase: str, keys: Sequence[str]
    ) -> list[Any]:
        """Run one phase: `fn(item)` per item as Dask tasks, with a progress bar; results in order."""
        return run_tasks(
            self.client,
            fn,
            items,
            keys=[f"{self.stage_id}-{phase}-{k}" for k in keys],
            label=f"{self.stage_id} · {phase}",
            console=self.console,
            retries=self.retries,
        )


def global_marker(work_dir: Path) -> Path:
    return work_dir / "_segment.done"


def load_finished(work_dir: Path, fingerprint: str) -> GlobalResult | None:
    """The saved result of a global segment that finished under the same configs, else None."""
    try:
        saved = json.loads(global_marker(work_dir).read_text())
    except (OSError, ValueError):
        return None
    if saved.get("fingerprint") != fingerprint:
        return None
    return GlobalResult(counter=StageCounter.from_json(saved["counter"]), details=saved["details"])


def save_finished(work_dir: Path, fingerprint: str, result: GlobalResult) -> None:
    payload = {"fingerprint": fingerprint, "counter": result.counter.to_json(), "details": result.details}
    atomic_write_text(global_marker(work_dir), json.dumps(payload, indent=1))
