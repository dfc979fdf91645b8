"""The main job, `pipelines/web.yaml`, on the bundled sample: every record accounted for, reproducibly."""

from __future__ import annotations

import json

import pytest
import yaml

from curate.config import load_pipeline
from curate.engine import run_pipeline
from tests.conftest import REPO

MALFORMED = {
    "warc_corrupt": 1,
    "http_unparsable": 1,
    "decode_error": 1,
    "too_large": 1,
    "not_html": 2,
    "empty": 1,
}


@pytest.fixture
def web_pipeline(tmp_path):
    """pipelines/web.yaml with absolute input paths and its output in tmp_path."""

    def make(name: str, **executor):
        config = yaml.safe_load((REPO / "pipelines" / "web.yaml").read_text())
        config["input"]["paths"] = [str(REPO / p) for p in config["input"]["paths"]]
        config["output"]["dir"] = str(tmp_path / name)
        config["executor"].update(executor, dashboard_address=":0")
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return load_pipeline(path)

    return make


def test_every_malformed_record_has_a_named_reason(web_pipeline, tmp_path):
    summary = run_pipeline(web_pipeline("out", workers=2))
    stats = json.loads(summary.stats_path.read_text())
    ingest = stats["stages"][0]
    assert {reason: ingest["dropped"][reason] for reason in MALFORMED} == MALFORMED
    for stage in stats["stages"]:
        assert stage["in"] == stage["kept"] + sum(stage["dropped"].values()), stage["name"]
        assert not [r for r in stage["dropped"] if r.startswith("error:")], "no stage may raise"
    kept = stats["stages"][-1]["kept"]
    assert kept >= 30, "the sample's good pages should mostly survive the filters"


def test_web_output_identical_with_one_and_two_workers(web_pipeline, tmp_path):
    run_pipeline(web_pipeline("one", workers=1))
    run_pipeline(web_pipeline("two", workers=2))
    one = {
        p.relative_to(tmp_path / "one"): p.read_bytes() for p in sorted((tmp_path / "one").rglob("part-*"))
    }
    two = {
        p.relative_to(tmp_path / "two"): p.read_bytes() for p in sorted((tmp_path / "two").rglob("part-*"))
    }
    data_files = [name for name in one if "dataset" in str(name) or "rejects" in str(name)]
    assert data_files and one.keys() == two.keys()
    assert [name for name in data_files if one[name] != two[name]] == []
