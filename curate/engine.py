"""Run a validated pipeline on Dask: plan segments, skip finished shards, run the rest, report.

The run is a loop over segments; inside a segment every shard is one task. Shard outputs, stats and
completion markers live under `output/segment-NN/`, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from distributed import Client
from rich.console import Console

from curate.config import Pipeline
from curate.dask_tasks import dask_client, run_tasks
from curate.global_run import GlobalContext, GlobalResult, load_finished, save_finished
from curate.part_files import remove_orphaned_temp_files
from curate.planner import Segment, plan
from curate.report import funnel_table, write_funnel_png
from curate.shard_task import ShardTask, is_done, output_path, run_shard, stats_path
from curate.stats import StageCounter, check_funnel


@dataclass(frozen=True)
class RunSummary:
    stats_path: Path
    processed: int
    skipped: int
    counters: list[StageCounter]


def shard_id(path: str) -> str:
    """Stable shard id from the input path: readable stem plus a hash that tells same-named files apart."""
    name = Path(path).name
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name.split(".")[0])[:48]
    return f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def run_pipeline(pipeline: Pipeline, console: Console | None = None) -> RunSummary:
    """Run every segment of `pipeline`, resuming finished shards; write stats.json and the funnel."""
    console = console or Console(stderr=True)
    started = time.time()
    out_dir = pipeline.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temp_files(out_dir)
    segments = plan(pipeline)
    shards = [(shard_id(p), p) for p in pipeline.input_files]
    processed = skipped = 0
    counters: list[StageCounter] = []
    details: dict[str, dict] = {}

    with dask_client(pipeline.executor) as client:
        console.print(f"[bold]Dask dashboard:[/bold] {client.dashboard_link}")
        for segment in segments:
            if segment.is_global:
                result = _run_global(client, pipeline, segment, shards, console)
                counters.append(result.counter)
                details[segment.stages[0].id] = result.details
                continue
            tasks = _segment_tasks(pipeline, segment, shards)
            todo = [t for t in tasks if not is_done(Path(t.segment_dir), t.shard_id, t.fingerprint)]
            skipped += len(tasks) - len(todo)
            processed += len(todo)
            if len(todo) < len(tasks):
                console.print(
                    f"{segment.label}: {len(tasks) - len(todo)} of {len(tasks)} shards already done"
                )
            _run_partition_segment(client, todo, segment, pipeline.executor.retries, console)
            counters.extend(_segment_counters(segment, tasks))

    # A task on a worker that died mid-write left its temp file; its retry wrote the real part.
    remove_orphaned_temp_files(out_dir)
    check_funnel(counters)
    summary = {
        "pipeline": pipeline.path,
        "pipeline_sha256": pipeline.file_sha256,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 3),
        "shards": len(shards),
        # One task per shard and partition segment: a resumed run shows what it did not redo.
        "shard_tasks": {"processed": processed, "skipped": skipped},
        "stages": [c.to_json() for c in counters],
        "global_stages": details,
        "funnel_check": "ok",
    }
    path = out_dir / "stats.json"
    path.write_text(json.dumps(summary, indent=2))
    console.print(funnel_table(counters))
    png = write_funnel_png(counters, out_dir / "funnel.png")
    console.print(
        f"shard tasks: {processed} processed, {skipped} already done · stats: {path} · funnel: {png}"
    )
    return RunSummary(stats_path=path, processed=processed, skipped=skipped, counters=counters)


def _segment_tasks(pipeline: Pipeline, segment: Segment, shards: list[tuple[str, str]]) -> list[ShardTask]:
    seg_dir = pipeline.output_dir / segment.dirname
    prev_dir = pipeline.output_dir / f"segment-{segment.index - 1:02d}"
    rejects = str(pipeline.output_dir / "rejects") if pipeline.rejects else None
    return [
        ShardTask(
            shard_id=sid,
            source_path=path if segment.index == 0 else str(output_path(prev_dir, sid)),
            stages=segment.stages,
            segment_dir=str(seg_dir),
            fingerprint=segment.fingerprint,
            write_output=not segment.is_last,
            rejects_dir=rejects,
        )
        for sid, path in shards
    ]


def _run_partition_segment(
    client: Client, tasks: list[ShardTask], segment: Segment, retries: int, console: Console
) -> None:
    kept = 0

    def describe(report: dict) -> str:
        nonlocal kept
        kept += report["stages"][-1]["kept"]
        return f"{kept:,} docs kept"

    run_tasks(
        client,
        run_shard,
        tasks,
        keys=[f"{segment.dirname}-{t.shard_id}" for t in tasks],
        label=f"{segment.label} · shards",
        console=console,
        retries=retries,
        describe=describe,
    )


def _run_global(
    client: Client, pipeline: Pipeline, segment: Segment, shards: list[tuple[str, str]], console: Console
) -> GlobalResult:
    """Run a global stage over the previous segment's parts, or reuse its result if it finished."""
    spec = segment.stages[0]
    work_dir = pipeline.output_dir / segment.dirname
    finished = load_finished(work_dir, segment.fingerprint)
    if finished is not None:
        console.print(f"{spec.id}: already done")
        return finished
    work_dir.mkdir(parents=True, exist_ok=True)
    prev_dir = pipeline.output_dir / f"segment-{segment.index - 1:02d}"
    ctx = GlobalContext(
        client=client,
        stage_id=spec.id,
        parts=[(sid, output_path(prev_dir, sid)) for sid, _ in shards],
        work_dir=work_dir,
        output_dir=pipeline.output_dir,
        write_output=not segment.is_last,
        rejects_dir=pipeline.output_dir / "rejects" / spec.id if pipeline.rejects else None,
        console=console,
        retries=pipeline.executor.retries,
        pipeline_sha256=pipeline.file_sha256,
        backend=pipeline.backend,
    )
    result = spec.cls(spec.config).run(ctx)
    save_finished(work_dir, segment.fingerprint, result)
    return result


def _segment_counters(segment: Segment, tasks: list[ShardTask]) -> list[StageCounter]:
    """Sum the per-shard stats of a segment (finished in this run or an earlier one)."""
    totals = [StageCounter(id=s.id, stage=s.cls.name) for s in segment.stages]
    for task in tasks:
        report = json.loads(stats_path(Path(task.segment_dir), task.shard_id).read_text())
        for total, data in zip(totals, report["stages"], strict=True):
            total.merge(StageCounter.from_json(data))
    return totals
