"""Run a validated pipeline on Dask: plan segments, skip finished shards, run the rest, report.

The run is a loop over segments; inside a segment every shard is one task. Shard outputs, stats and
completion markers live under `output/segment-NN/`, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from distributed import Client, LocalCluster, as_completed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curate.config import ExecutorConfig, Pipeline
from curate.planner import Segment, plan
from curate.report import funnel_table, write_funnel_png
from curate.shard_task import ShardTask, is_done, output_path, run_shard, stats_path
from curate.stats import StageCounter, check_funnel


class ShardFailed(RuntimeError):
    """A shard task failed after its retries; the message names the shard and the error."""


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


@contextmanager
def dask_client(executor: ExecutorConfig):
    """A client for the configured scheduler, or for an embedded LocalCluster."""
    if executor.address:
        with Client(executor.address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=executor.workers,
            threads_per_worker=executor.threads_per_worker,
            processes=executor.processes,
            memory_limit=executor.memory_limit,
            dashboard_address=executor.dashboard_address,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_pipeline(pipeline: Pipeline, console: Console | None = None) -> RunSummary:
    """Run every segment of `pipeline`, resuming finished shards; write stats.json and the funnel."""
    console = console or Console(stderr=True)
    started = time.time()
    out_dir = pipeline.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    segments = plan(pipeline)
    shards = [(shard_id(p), p) for p in pipeline.input_files]
    processed = skipped = 0
    counters: list[StageCounter] = []

    with dask_client(pipeline.executor) as client:
        console.print(f"[bold]Dask dashboard:[/bold] {client.dashboard_link}")
        for segment in segments:
            if segment.is_global:
                raise NotImplementedError(f"global stage {segment.label!r} has no executor yet")
            tasks = _segment_tasks(pipeline, segment, shards)
            todo = [t for t in tasks if not is_done(Path(t.segment_dir), t.shard_id, t.fingerprint)]
            skipped += len(tasks) - len(todo)
            processed += len(todo)
            if len(todo) < len(tasks):
                console.print(
                    f"{segment.label}: {len(tasks) - len(todo)} of {len(tasks)} shards already done"
                )
            _run_tasks(client, todo, segment, pipeline.executor.retries, console)
            counters.extend(_segment_counters(segment, tasks))

    check_funnel(counters)
    summary = {
        "pipeline": pipeline.path,
        "pipeline_sha256": pipeline.file_sha256,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 3),
        "shards": {"total": len(shards), "processed": processed, "skipped": skipped},
        "stages": [c.to_json() for c in counters],
        "funnel_check": "ok",
    }
    path = out_dir / "stats.json"
    path.write_text(json.dumps(summary, indent=2))
    console.print(funnel_table(counters))
    png = write_funnel_png(counters, out_dir / "funnel.png")
    console.print(f"shards: {processed} processed, {skipped} already done · stats: {path} · funnel: {png}")
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


def _run_tasks(
    client: Client, tasks: list[ShardTask], segment: Segment, retries: int, console: Console
) -> None:
    if not tasks:
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{segment.label} · shards", total=len(tasks))
        docs_kept = 0
        futures = {
            client.submit(run_shard, t, key=f"{segment.dirname}-{t.shard_id}", pure=False, retries=retries): t
            for t in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            if future.status != "finished":
                error = future.exception()
                client.cancel(list(futures))
                raise ShardFailed(f"shard {task.shard_id} ({task.source_path}) failed: {error!r}") from error
            docs_kept += future.result()["stages"][-1]["kept"]
            progress.update(bar, advance=1, description=f"{segment.label} · {docs_kept:,} docs kept")


def _segment_counters(segment: Segment, tasks: list[ShardTask]) -> list[StageCounter]:
    """Sum the per-shard stats of a segment (finished in this run or an earlier one)."""
    totals = [StageCounter(id=s.id, stage=s.cls.name) for s in segment.stages]
    for task in tasks:
        report = json.loads(stats_path(Path(task.segment_dir), task.shard_id).read_text())
        for total, data in zip(totals, report["stages"], strict=True):
            total.merge(StageCounter.from_json(data))
    return totals
