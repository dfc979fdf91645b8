"""What `curate dedup` and `curate tokenize` share: a pipeline over an existing dataset, written and run.

The pipeline is written to `OUT/<command>.yaml` before it runs, so the run resumes like any other, reports
its funnel, and can be repeated or tuned with `curate run OUT/<command>.yaml`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError
from rich.console import Console

from curate.config import OutputConfig, PipelineConfigError, load_pipeline


def dataset_pipeline(
    input_glob: str, out: str, workers: int | None, stages: list[dict], rejects: bool
) -> dict:
    """`read_parquet` → `stages` over `input_glob`, writing to `out`."""
    # Absolute paths: the written file must mean the same thing when rerun from another directory.
    return {
        "input": {"paths": [os.path.abspath(input_glob)]},
        "output": {"dir": os.path.abspath(out), "rejects": rejects},
        "executor": {} if workers is None else {"workers": workers},
        "stages": [{"stage": "read_parquet"}, *stages],
    }


def write_and_run(command: str, config: dict, out: str, console: Console) -> int:
    """Write `config` to OUT/<command>.yaml and run it with the engine."""
    from curate.engine import run_pipeline  # imports dask

    try:  # the pipeline's own output.dir check, before the pipeline file is written there
        OutputConfig(dir=out)
    except ValidationError as err:
        raise PipelineConfigError(
            f"--out {out}: {err.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None
    path = Path(out) / f"{command}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `curate {command}`; run it again with: curate run {path}\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    # The executor holds only what the command's flags set, so errors in it name them as flags.
    run_pipeline(load_pipeline(path, config["executor"]), console=console)
    return 0
