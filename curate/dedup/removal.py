"""The last phase of both dedup stages: drop the listed duplicates from one shard's part.

Each shard task reads its part, looks its document keys up in the rows the previous phase sent it
(the keys to drop, and for fuzzy dedup the cluster each belongs to), writes the kept rows as the
stage's output part and the dropped rows, with their `drop_reason`, to the rejects. Row order is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from curate.dedup.documents import doc_keys, key_ids
from curate.dedup.exchange import Exchange
from curate.global_run import GlobalContext
from curate.part_files import PartWriter, read_part
from curate.stage import DROP_REASON
from curate.stats import StageCounter, content_bytes

CLUSTER_COLUMN = "dup_cluster"


@dataclass(frozen=True)
class RemovalJob:
    """One shard: where its part is, where its drop list arrives, and where the results go."""

    shard: int
    shard_id: str
    part: Path
    drops: Exchange  # rows (key[, cluster]) sent to this shard's ordinal
    reason: str
    stage_id: str
    output: Path | None  # None: the stage is the pipeline's last, nothing reads its parts
    rejects: Path | None
    with_cluster: bool  # add `dup_cluster` (the kept document's id) to every document


def remove_duplicates(job: RemovalJob) -> dict:
    """Split the shard's part into kept and dropped rows; return their counts and bytes."""
    frame = read_part(job.part)
    drops = job.drops.receive(job.shard)
    # A part with no rows may have no columns either (nothing reached the previous stage).
    ids = pa.array(frame["id"]) if len(frame) else pa.array([], pa.string())
    keys = pd.Series(doc_keys(ids, job.shard, 0), dtype="str")
    listed = keys.isin(drops["key"]).to_numpy()
    if job.with_cluster:
        cluster = keys.map(drops.set_index("key")["cluster"])
        frame[CLUSTER_COLUMN] = cluster.fillna(key_ids(keys)).astype("str").to_numpy()
    kept = frame.loc[~listed].reset_index(drop=True)
    dropped = frame.loc[listed].reset_index(drop=True)
    if job.output is not None:
        writer = PartWriter(job.output)
        writer.write(kept)
        writer.commit()
    if job.rejects is not None and len(dropped):
        writer = PartWriter(job.rejects)
        writer.write(dropped.assign(**{DROP_REASON: job.reason, "drop_stage": job.stage_id}))
        writer.commit()
    return {
        "in": len(frame),
        "kept": len(kept),
        "dropped": len(dropped),
        "bytes_in": content_bytes(frame),
        "bytes_out": content_bytes(kept),
    }


def stage_counter(
    stage_id: str, stage: str, reason: str, results: list[dict], seconds: float
) -> StageCounter:
    """The stage's funnel counters, summed over the shard tasks' results."""
    counter = StageCounter(id=stage_id, stage=stage, seconds=seconds)
    for result in results:
        counter.docs_in += result["in"]
        counter.kept += result["kept"]
        counter.bytes_in += result["bytes_in"]
        counter.bytes_out += result["bytes_out"]
        if result["dropped"]:
            counter.dropped[reason] += result["dropped"]
    return counter


def removal_jobs(ctx: GlobalContext, drops: Exchange, reason: str, with_cluster: bool) -> list[RemovalJob]:
    """One removal job per shard of `ctx`, in shard order."""
    return [
        RemovalJob(
            shard=shard,
            shard_id=sid,
            part=path,
            drops=drops,
            reason=reason,
            stage_id=ctx.stage_id,
            output=ctx.output_part(sid) if ctx.write_output else None,
            rejects=ctx.rejects_dir / f"part-{sid}.parquet" if ctx.rejects_dir else None,
            with_cluster=with_cluster,
        )
        for shard, (sid, path) in enumerate(ctx.parts)
    ]
