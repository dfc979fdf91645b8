"""dedup_exact: one document per normalized text across shards, the smallest id kept, rejects named."""

from __future__ import annotations

import pandas as pd
import pytest

from curate.stages.dedup_exact import DedupExact, DedupExactConfig
from tests.curate.dedup_corpus import InlineContext, read_parts, write_shards

DOCS = pd.DataFrame(
    {
        "id": ["d5", "d3", "d9", "d1", "d7", "d2", "d8", "d4", "d6"],
        "text": [
            "The cat sat on the mat.",
            "the cat  sat on the\nmat.",  # same text but for case and whitespace
            "The cat sat on the mat.",  # byte-identical to d5
            "A different page.",
            "A different page.",
            "The cat sat on the mat!",  # one character differs: not an exact duplicate
            "",
            "",
            "Unique text here.",
        ],
        "url": [f"http://example.com/{i}" for i in range(9)],
    }
)


def run(tmp_path, docs: pd.DataFrame, shards: int = 3, write_output: bool = True, **config):
    ctx = InlineContext(
        parts=write_shards(docs, tmp_path / "in", shards),
        work_dir=tmp_path / "work",
        rejects_dir=tmp_path / "rejects",
        write_output=write_output,
    )
    result = DedupExact(DedupExactConfig(**config)).run(ctx)
    return ctx, result


def test_keeps_the_smallest_id_of_each_normalized_text_across_shards(tmp_path):
    ctx, result = run(tmp_path, DOCS)
    kept, rejected = read_parts(ctx.work_dir), read_parts(ctx.rejects_dir)
    assert sorted(kept["id"]) == ["d1", "d2", "d3", "d4", "d6"]
    assert sorted(rejected["id"]) == ["d5", "d7", "d8", "d9"]
    assert (rejected["drop_reason"] == "exact_duplicate").all() and (rejected["drop_stage"] == "dedup").all()
    assert list(kept.columns) == ["id", "text", "url"], "documents pass through unchanged"
    counter = result.counter
    assert (counter.docs_in, counter.kept, dict(counter.dropped)) == (9, 5, {"exact_duplicate": 4})
    assert result.details["groups"] == 3 and result.details["duplicates"] == 4
    assert set(result.details["seconds"]) == {"hashes", "groups", "remove"}
    assert ctx.phases == ["hashes", "groups", "remove"]


def test_normalize_none_matches_only_byte_identical_texts(tmp_path):
    ctx, result = run(tmp_path, DOCS, normalize="none")
    assert sorted(read_parts(ctx.rejects_dir)["id"]) == ["d7", "d8", "d9"]
    assert result.counter.kept == 6


def test_keeps_the_row_order_of_each_shard(tmp_path):
    # shard 0 holds z, y, x and shard 1 b, a, c (round-robin); x repeats a's text, so a (smaller) stays
    docs = pd.DataFrame({"id": ["z", "b", "y", "a", "x", "c"], "text": ["1", "2", "3", "4", "4", "6"]})
    ctx, _ = run(tmp_path, docs, shards=2)
    parts = [pd.read_parquet(p)["id"].tolist() for p in sorted(ctx.work_dir.glob("part-*.parquet"))]
    assert parts == [["z", "y"], ["b", "a", "c"]]


def test_writes_a_part_for_an_empty_shard(tmp_path):
    docs = pd.DataFrame({"id": ["b", "a", "c"], "text": ["x", "y", "x"]})
    ctx, result = run(tmp_path, docs, shards=4, partitions=2)
    parts = {p.name: pd.read_parquet(p) for p in sorted(ctx.work_dir.glob("part-*.parquet"))}
    assert [len(p) for p in parts.values()] == [1, 1, 0, 0], "one part per shard, the empty one too"
    assert result.counter.kept == 2 and read_parts(ctx.rejects_dir)["id"].tolist() == ["c"]


def test_last_stage_writes_no_parts_but_counts_and_rejects(tmp_path):
    ctx, result = run(tmp_path, DOCS, write_output=False)
    assert not list(ctx.work_dir.glob("part-*.parquet"))
    assert result.counter.kept == 5 and len(read_parts(ctx.rejects_dir)) == 4


def test_documents_need_ids(tmp_path):
    with pytest.raises(ValueError, match="`id` on every document"):
        run(tmp_path, DOCS.assign(id=[None, *DOCS["id"][1:]]))
