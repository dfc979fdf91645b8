"""Running a dedup stage's phases: each a `ctx.map` over shards or partitions, timed, in a scratch folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

from curate.dedup.exchange import Exchange, exchange
from curate.global_run import GlobalContext

# Hash partitions of the shuffles when the config leaves it open: one per shard keeps a partition
# about the size of a shard; the cap keeps shards x partitions exchange files in check.
MAX_DEFAULT_PARTITIONS = 256


class PhaseRunner:
    """Runs phases through `ctx.map`, records their seconds, and owns the stage's scratch folder.

    The scratch folder is emptied first (files of a run with another config must not be read back)
    and removed by `close`, once the stage has written its output parts.
    """

    def __init__(self, ctx: GlobalContext, partitions: int | None) -> None:
        self.ctx = ctx
        self.partitions = partitions or max(1, min(len(ctx.parts), MAX_DEFAULT_PARTITIONS))
        self.seconds: dict[str, float] = {}
        self.scratch = ctx.work_dir / "scratch"
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)

    def exchange(self, name: str, schema: dict[str, str]) -> Exchange:
        """A new exchange in the scratch folder."""
        return exchange(self.scratch, name, schema)

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], phase: str, timer: str | None = None
    ) -> list[Any]:
        """One task per item (shard or partition, keyed by position); time goes to `timer` or `phase`."""
        started = time.perf_counter()
        results = self.ctx.map(fn, items, phase, [f"{i:05d}" for i in range(len(items))])
        key = timer or phase
        self.seconds[key] = round(self.seconds.get(key, 0.0) + time.perf_counter() - started, 3)
        return results

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
