"""One task: run a segment's fused partition stages over one shard, on a worker.

Batches stream through the stages so memory stays bounded by the batch size, not the shard size.
The shard's stats and its completion marker are written last; a marker means the shard is done.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from curate.config import StageSpec
from curate.part_files import PartWriter, atomic_write_text, read_part
from curate.stage import DROP_REASON, ShardContext, Stage, StageError, StageResult
from curate.stats import StageCounter, content_bytes

log = logging.getLogger(__name__)

PARQUET_SOURCE_BATCH = 2000


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs for one shard: plain data, cheap to ship."""

    shard_id: str
    source_path: str  # an input file, or the previous segment's part
    stages: tuple[StageSpec, ...]
    segment_dir: str
    fingerprint: str
    write_output: bool  # a later segment reads this segment's parts
    rejects_dir: str | None

    @property
    def marker(self) -> Path:
        return marker_path(Path(self.segment_dir), self.shard_id)


def marker_path(segment_dir: Path, shard_id: str) -> Path:
    return segment_dir / f"part-{shard_id}.done"


def stats_path(segment_dir: Path, shard_id: str) -> Path:
    return segment_dir / f"part-{shard_id}.stats.json"


def output_path(segment_dir: Path, shard_id: str) -> Path:
    return segment_dir / f"part-{shard_id}.parquet"


def is_done(segment_dir: Path, shard_id: str, fingerprint: str) -> bool:
    """True when the shard finished under the same stage configs (a changed config redoes it)."""
    marker = marker_path(segment_dir, shard_id)
    try:
        return json.loads(marker.read_text())["fingerprint"] == fingerprint
    except (OSError, ValueError, KeyError):
        return False


_local = threading.local()


def _stage_instances(specs: tuple[StageSpec, ...]) -> list[Stage]:
    """Stage objects are reused across shards on the same worker thread (models load once)."""
    cache = getattr(_local, "stages", None)
    if cache is None:
        cache = _local.stages = {}
    key = tuple((s.id, s.cls.__module__, s.cls.__qualname__, repr(s.params)) for s in specs)
    if key not in cache:
        cache[key] = [spec.cls(spec.config) for spec in specs]
    return cache[key]


def _guarded(stage: Stage, spec: StageSpec, batch: pd.DataFrame) -> StageResult:
    """Run a stage; if it raises on a batch, retry row by row and drop only the rows that fail.

    One pathological document must not fail a shard of thousands; the failures stay counted under
    `error:<stage id>` and the first traceback is logged. A `StageError` is no document's fault and
    fails the shard.
    """
    try:
        return stage.process(batch)
    except StageError:
        raise
    except Exception:
        log.warning("stage %s raised on a batch; isolating rows:\n%s", spec.id, traceback.format_exc())
    kept, dropped = [], []
    for i in range(len(batch)):
        row = batch.iloc[i : i + 1].reset_index(drop=True)
        try:
            result = stage.process(row)
        except Exception as err:  # noqa: BLE001 - counted as a drop reason, never silent
            dropped.append(row.assign(**{DROP_REASON: f"error:{spec.id}:{type(err).__name__}"}))
            continue
        kept.append(result.kept)
        dropped.append(result.dropped)
    empty = batch.iloc[0:0]
    return StageResult(
        kept=pd.concat(kept, ignore_index=True) if kept else empty,
        dropped=pd.concat(dropped, ignore_index=True) if dropped else empty.assign(**{DROP_REASON: []}),
    )


def _source_batches(task: ShardTask, stages: list[Stage], ctx: ShardContext) -> Iterator[StageResult]:
    first = stages[0]
    if first.kind == "source":
        yield from first.read(task.source_path, ctx)
        return
    frame = read_part(Path(task.source_path))
    for start in range(0, max(len(frame), 1), PARQUET_SOURCE_BATCH):
        yield StageResult.keep_all(frame.iloc[start : start + PARQUET_SOURCE_BATCH].reset_index(drop=True))


def run_shard(task: ShardTask) -> dict:
    """Process one shard end to end; return (and persist) its per-stage counters."""
    segment_dir = Path(task.segment_dir)
    ctx = ShardContext(shard_id=task.shard_id, source_path=task.source_path, output_dir=segment_dir.parent)
    stages = _stage_instances(task.stages)
    counters = [StageCounter(id=s.id, stage=s.cls.name) for s in task.stages]
    # A segment that starts with a source stage counts that stage from what it yields.
    first_processing = 1 if stages[0].kind == "source" else 0
    out = PartWriter(output_path(segment_dir, task.shard_id)) if task.write_output else None
    rejects: dict[str, PartWriter] = {}
    started = time.perf_counter()

    for stage in stages:
        stage.start_shard(ctx)
    clock = time.perf_counter()
    for result in _source_batches(task, stages, ctx):
        if first_processing:
            docs_in = len(result.kept) + len(result.dropped)
            counters[0].add(docs_in, result.kept, result.dropped, 0, time.perf_counter() - clock)
            _reject(task, rejects, counters[0].id, result.dropped)
        batch = result.kept
        for stage, spec, counter in zip(
            stages[first_processing:],
            task.stages[first_processing:],
            counters[first_processing:],
            strict=True,
        ):
            before = time.perf_counter()
            bytes_in = content_bytes(batch)
            result = _guarded(stage, spec, batch)
            counter.add(len(batch), result.kept, result.dropped, bytes_in, time.perf_counter() - before)
            _reject(task, rejects, spec.id, result.dropped)
            batch = result.kept
        if out is not None:
            out.write(batch)
        clock = time.perf_counter()
    for stage in stages:
        stage.finish_shard()
    if out is not None:
        out.commit()
    for writer in rejects.values():
        writer.commit()

    report = {
        "shard": task.shard_id,
        "source": task.source_path,
        "fingerprint": task.fingerprint,
        "seconds": round(time.perf_counter() - started, 6),
        "stages": [c.to_json() for c in counters],
    }
    atomic_write_text(stats_path(segment_dir, task.shard_id), json.dumps(report, indent=1))
    atomic_write_text(task.marker, json.dumps({"fingerprint": task.fingerprint}))
    return report


def _reject(task: ShardTask, writers: dict[str, PartWriter], stage_id: str, dropped: pd.DataFrame) -> None:
    if task.rejects_dir is None or dropped.empty:
        return
    if stage_id not in writers:
        path = Path(task.rejects_dir) / stage_id.replace("/", "_") / f"part-{task.shard_id}.parquet"
        writers[stage_id] = PartWriter(path)
    writers[stage_id].write(dropped.assign(drop_stage=stage_id))
