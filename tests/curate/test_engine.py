"""The engine: outputs, resume, invalidation, determinism across worker counts, the funnel check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from curate.config import load_pipeline
from curate.engine import run_pipeline
from curate.stats import FunnelError
from tests.conftest import REPO, write_warc

TEST_STAGES = "tests.curate.stages_for_tests"


def pipeline(
    crawl: Path, out: Path, workers: int = 2, middle: list | None = None, threshold: float = 0.65
) -> dict:
    return {
        "input": {"paths": [f"{crawl}/*.warc.gz"]},
        "output": {"dir": str(out), "rejects": True},
        "executor": {"workers": workers, "dashboard_address": ":0"},
        "stages": [
            {"stage": "warc_ingest"},
            {"stage": "extract"},
            {"stage": "langid", "languages": ["en"], "threshold": threshold},
            *(middle or []),
            {"stage": "write_parquet"},
            {"stage": "write_jsonl"},
        ],
    }


def run(write_pipeline, config: dict, name: str = "pipeline.yaml"):
    return run_pipeline(load_pipeline(write_pipeline(config, name)))


def file_bytes(root: Path, *subdirs: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for d in subdirs
        for p in sorted((root / d).rglob("*"))
        if p.is_file()
    }


def test_run_writes_dataset_stats_and_funnel(write_pipeline, small_crawl, tmp_path):
    out = tmp_path / "out"
    summary = run(write_pipeline, pipeline(small_crawl, out))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["shards"] == 6 and stats["shard_tasks"] == {"processed": 6, "skipped": 0}
    assert [s["name"] for s in stats["stages"]][:3] == ["warc_ingest", "extract", "langid"]
    for stage in stats["stages"]:
        assert stage["in"] == stage["kept"] + sum(stage["dropped"].values())
    assert stats["stages"][0]["in"] == 24
    assert (out / "funnel.png").stat().st_size > 0
    dataset = pd.concat(pd.read_parquet(p) for p in sorted((out / "dataset").glob("part-*.parquet")))
    assert len(dataset) == summary.counters[-1].kept == 24
    assert {"id", "url", "text", "lang", "lang_score"} <= set(dataset.columns)
    assert "html" not in dataset.columns
    assert (dataset["lang"] == "en").all()
    assert not dataset["text"].str.contains("Copyright 2026").any(), "boilerplate footer must be stripped"
    assert len(list((out / "dataset_jsonl").glob("part-*.jsonl.gz"))) == 6


def test_rerun_skips_finished_shards_and_changed_config_redoes_them(write_pipeline, small_crawl, tmp_path):
    out = tmp_path / "out"
    run(write_pipeline, pipeline(small_crawl, out))
    before = file_bytes(out, "dataset")
    again = run(write_pipeline, pipeline(small_crawl, out))
    assert (again.processed, again.skipped) == (0, 6)
    assert file_bytes(out, "dataset") == before
    changed = run(write_pipeline, pipeline(small_crawl, out, threshold=0.99))
    assert (changed.processed, changed.skipped) == (6, 0)
    assert changed.counters[2].dropped["langid:low_confidence"] > 0


def test_output_identical_with_one_and_two_workers(write_pipeline, small_crawl, tmp_path):
    run(write_pipeline, pipeline(small_crawl, tmp_path / "w1", workers=1), "one.yaml")
    run(write_pipeline, pipeline(small_crawl, tmp_path / "w2", workers=2), "two.yaml")
    one = file_bytes(tmp_path / "w1", "dataset", "dataset_jsonl", "rejects")
    two = file_bytes(tmp_path / "w2", "dataset", "dataset_jsonl", "rejects")
    assert one and one.keys() == two.keys()
    assert all(one[name] == two[name] for name in one)


def test_a_stage_that_loses_documents_fails_the_run(write_pipeline, small_crawl, tmp_path):
    config = pipeline(small_crawl, tmp_path / "out", middle=[{"stage": f"{TEST_STAGES}:LoseRows"}])
    with pytest.raises(
        FunnelError, match=r"stage 'tests.curate.stages_for_tests:LoseRows': in=24 but kept\+dropped=12"
    ):
        run(write_pipeline, config)


def test_cli_exits_nonzero_on_funnel_violation(write_pipeline, small_crawl, tmp_path):
    config = pipeline(small_crawl, tmp_path / "out", middle=[{"stage": f"{TEST_STAGES}:LoseRows"}])
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(write_pipeline(config))],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 3
    assert "funnel check failed" in proc.stderr
    assert not (tmp_path / "out" / "stats.json").exists()


def test_a_stage_exception_drops_only_the_failing_documents(write_pipeline, tmp_path):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    write_warc(crawl / "a.warc.gz", [("http://ok.example/1", "fine"), ("http://boom.example/2", "bad")])
    config = pipeline(
        crawl, tmp_path / "out", middle=[{"stage": f"{TEST_STAGES}:RaiseOn", "name": "fragile"}]
    )
    summary = run(write_pipeline, config)
    fragile = next(c for c in summary.counters if c.id == "fragile")
    assert (fragile.docs_in, fragile.kept) == (2, 1)
    assert fragile.dropped == {"error:fragile:ValueError": 1}
    rejects = pd.read_parquet(next((tmp_path / "out" / "rejects" / "fragile").glob("*.parquet")))
    assert rejects["url"].tolist() == ["http://boom.example/2"]


def test_killed_run_resumes_without_redoing_finished_shards(write_pipeline, small_crawl, tmp_path):
    slow = [{"stage": f"{TEST_STAGES}:Slow", "seconds_per_batch": 1.0}]
    killed = write_pipeline(pipeline(small_crawl, tmp_path / "killed", workers=1, middle=slow), "killed.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "curate.cli", "run", str(killed)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    markers = tmp_path / "killed" / "segment-00"
    deadline = time.monotonic() + 120
    while not list(markers.glob("*.done")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(markers.glob("*.done")))
    assert 1 <= done_before < 6, "the run must be killed half-way"

    resumed = run_pipeline(load_pipeline(killed))
    assert (resumed.processed, resumed.skipped) == (6 - done_before, done_before)
    run(write_pipeline, pipeline(small_crawl, tmp_path / "clean", workers=1, middle=slow), "clean.yaml")
    assert file_bytes(tmp_path / "killed", "dataset", "dataset_jsonl") == file_bytes(
        tmp_path / "clean", "dataset", "dataset_jsonl"
    )


def test_global_stage_is_a_barrier_and_resumes(write_pipeline, small_crawl, tmp_path):
    out = tmp_path / "out"
    config = pipeline(
        small_crawl, out, middle=[{"stage": f"{TEST_STAGES}:KeepLongHalf", "name": "long_half"}]
    )
    summary = run(write_pipeline, config)
    assert [c.id for c in summary.counters][2:5] == ["langid", "long_half", "write_parquet"]
    stats = json.loads((out / "stats.json").read_text())
    median = stats["global_stages"]["long_half"]["median"]
    dataset = pd.read_parquet(out / "dataset")
    assert len(dataset) == summary.counters[3].kept == 12
    assert (dataset["text"].str.len() >= median).all()
    again = run(write_pipeline, config)
    assert (again.processed, again.skipped) == (0, 12)
