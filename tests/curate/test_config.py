"""Bad pipeline files fail before any work, with one line naming the file, the stage and the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curate.config import PipelineConfigError, load_pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def warc(tmp_path):
    path = tmp_path / "in.warc.gz"
    path.write_bytes(b"")
    return str(path)


def base(warc, tmp_path, **changes):
    config = {
        "input": {"paths": [warc]},
        "output": {"dir": str(tmp_path / "out")},
        "stages": [{"stage": "warc_ingest"}, {"stage": "extract"}, {"stage": "langid", "threshold": 0.5}],
    }
    config.update(changes)
    return config


def error_of(path) -> str:
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    assert str(path) in message, "errors must name the file"
    return message


def test_valid_file_loads(write_pipeline, warc, tmp_path):
    pipeline = load_pipeline(write_pipeline(base(warc, tmp_path)))
    assert [s.id for s in pipeline.stages] == ["warc_ingest", "extract", "langid"]
    assert pipeline.stages[2].config.threshold == 0.5


def test_invalid_yaml_names_the_line(write_pipeline):
    message = error_of(write_pipeline("input:\n  paths: [a\nstages: ]\n"))
    assert "invalid YAML at line" in message


def test_unknown_top_level_key(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path)
    config["outptu"] = config.pop("output")
    message = error_of(write_pipeline(config))
    assert "unknown key 'outptu'" in message


def test_missing_required_key(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path)
    del config["output"]
    assert "missing required key 'output'" in error_of(write_pipeline(config))


def test_unknown_stage_name_suggests_the_closest(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path, stages=[{"stage": "warc_ingest"}, {"stage": "extrct"}])
    message = error_of(write_pipeline(config))
    assert "stages[1] (extrct): unknown stage 'extrct'; did you mean 'extract'?" in message


def test_unknown_stage_key(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path)
    config["stages"][2] = {"stage": "langid", "treshold": 0.5}
    message = error_of(write_pipeline(config))
    assert "stages[2] (langid): unknown key 'treshold'" in message


def test_wrong_type(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path)
    config["stages"][2] = {"stage": "langid", "threshold": "high"}
    message = error_of(write_pipeline(config))
    assert "stages[2] (langid): key 'threshold'" in message and "'high'" in message


def test_value_out_of_range(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path, executor={"workers": 0})
    assert "key 'executor.workers'" in error_of(write_pipeline(config))


def test_missing_input_files(write_pipeline, tmp_path):
    config = base(str(tmp_path / "nowhere" / "*.warc.gz"), tmp_path)
    message = error_of(write_pipeline(config))
    assert "key 'input.paths': no file matches" in message


def test_missing_model_file(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path)
    config["stages"][2] = {"stage": "langid", "model_path": str(tmp_path / "lid.ftz")}
    message = error_of(write_pipeline(config))
    assert "stages[2] (langid): key 'model_path'" in message and "does not exist" in message


def test_source_stage_must_come_first(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path, stages=[{"stage": "extract"}, {"stage": "warc_ingest"}])
    assert "stages[0] (extract): the first stage must read the input" in error_of(write_pipeline(config))


def test_duplicate_stage_names(write_pipeline, warc, tmp_path):
    config = base(
        warc, tmp_path, stages=[{"stage": "warc_ingest"}, {"stage": "extract"}, {"stage": "extract"}]
    )
    assert "stages[2] (extract): duplicate stage name 'extract'" in error_of(write_pipeline(config))


def test_bad_scheduler_address(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path, executor={"address": "localhost:8786"})
    assert "key 'executor.address'" in error_of(write_pipeline(config))


def test_cli_validate_prints_one_line_and_exits_2(write_pipeline, warc, tmp_path):
    config = base(warc, tmp_path)
    config["stages"][2] = {"stage": "langid", "treshold": 0.5}
    path = write_pipeline(config)
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'treshold'" in lines[0]


def test_cli_validate_accepts_the_main_pipeline():
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "validate", "pipelines/web.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stderr


@pytest.mark.parametrize("pipeline", sorted(p.name for p in (REPO / "pipelines").glob("*.yaml")))
def test_every_shipped_pipeline_file_is_valid(pipeline, write_pipeline, warc, tmp_path):
    # Their inputs are made by scripts (a mirror, a rendering) that tests do not run: any file will do.
    config = yaml.safe_load((REPO / "pipelines" / pipeline).read_text())
    config["input"]["paths"] = [warc]
    config["output"]["dir"] = str(tmp_path / "out")
    loaded = load_pipeline(write_pipeline(config))
    assert [s.id for s in loaded.stages] == [s.get("name", s["stage"]) for s in config["stages"]]
