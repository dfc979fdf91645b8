"""Stage names in YAML: a `package.module:Class` that is no usable stage fails at load, naming it."""

from __future__ import annotations

import pytest

from curate.config import PipelineConfigError, load_pipeline


@pytest.mark.parametrize("stage", ["curate.stage:FilterStage", "curate.stage:Stage"])
def test_a_stage_base_class_is_a_config_error(write_pipeline, tmp_path, stage):
    # It validated, and the run ended in an AttributeError traceback on the missing `name`.
    data = tmp_path / "in.parquet"
    data.write_bytes(b"")
    config = {
        "input": {"paths": [str(data)]},
        "output": {"dir": str(tmp_path / "out")},
        "stages": [{"stage": "read_parquet"}, {"stage": stage}],
    }
    with pytest.raises(PipelineConfigError, match=rf"stages\[1\] \({stage}\): '{stage}' has no `name`"):
        load_pipeline(write_pipeline(config))
