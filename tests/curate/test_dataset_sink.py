"""The dataset writers: `columns` that name nothing to write fail the run instead of writing empty files."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from pydantic import ValidationError

from curate.stage import ShardContext, StageError
from curate.stages.write_jsonl import WriteJsonl
from curate.stages.write_parquet import WriteParquet
from tests.conftest import REPO


@pytest.mark.parametrize("cls", [WriteParquet, WriteJsonl])
def test_an_empty_column_list_is_a_config_error(cls):
    with pytest.raises(ValidationError, match="an empty list writes nothing"):
        cls.Config(columns=[])


@pytest.mark.parametrize("cls", [WriteParquet, WriteJsonl])
def test_a_column_the_documents_lack_names_it_and_the_available_ones(cls, tmp_path):
    sink = cls(cls.Config(columns=["id", "nope"]))
    sink.start_shard(ShardContext(shard_id="s", source_path="in", output_dir=tmp_path))
    batch = pd.DataFrame({"id": ["a"], "text": ["hello"]})
    with pytest.raises(StageError, match=r"'nope' not in the documents; they have: id, text"):
        sink.process(batch)
    # An empty batch may lack columns (filters add none to it): nothing to write, no error.
    sink.process(batch.iloc[0:0].drop(columns=["text"]))


def test_cli_run_with_an_unknown_column_fails_in_one_line(write_pipeline, small_crawl, tmp_path):
    config = {
        "input": {"paths": [f"{small_crawl}/part0.warc.gz"]},
        "output": {"dir": str(tmp_path / "out")},
        "executor": {"workers": 1, "processes": False, "dashboard_address": ":0", "retries": 0},
        "stages": [{"stage": "warc_ingest"}, {"stage": "write_parquet", "columns": ["nope"]}],
    }
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(write_pipeline(config))],
        capture_output=True, text=True, cwd=REPO, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    # Dask's worker logs the failed task above; the run ends with one line that says what to fix.
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "'nope' not in the documents; they have: id, url" in last
    assert not list((tmp_path / "out").rglob("*.parquet"))
