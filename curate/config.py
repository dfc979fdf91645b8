"""Pipeline files: load a YAML pipeline and validate all of it before any work starts.

Every error is one line that names the file, the place in it (`executor.workers`,
`stages[3] (langid).threshold`) and what to do about it.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate import registry
from curate.backend import cudf_problem
from curate.stage import Stage, StageConfig, stage_params


class PipelineConfigError(ValueError):
    """A pipeline file that cannot run; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Strict):
    paths: list[str] = Field(description="Input files or globs, relative to the working directory.")


class OutputConfig(_Strict):
    dir: str = Field(description="Output directory: segment parts, markers, stats.json, funnel report.")
    rejects: bool = Field(
        False, description="Also write dropped documents (with drop_reason) to dir/rejects/."
    )


class ExecutorConfig(_Strict):
    address: str | None = Field(
        None, description="Scheduler address (tcp://host:8786); unset starts a LocalCluster."
    )
    workers: int | None = Field(None, ge=1, description="LocalCluster worker processes (default: CPU cores).")
    threads_per_worker: int = Field(1, ge=1, description="Threads per LocalCluster worker.")
    memory_limit: str = Field(
        "auto", description="Memory limit per LocalCluster worker ('auto', '4GB', ...)."
    )
    processes: bool = Field(
        True, description="LocalCluster workers as processes (False: threads in this process)."
    )
    dashboard_address: str = Field(
        ":8787", description="Where the LocalCluster dashboard listens (moves if taken)."
    )
    retries: int = Field(2, ge=0, description="Times a shard task is retried after a worker dies.")


class PipelineSchema(_Strict):
    input: InputConfig
    output: OutputConfig
    executor: ExecutorConfig = ExecutorConfig()
    backend: Literal["auto", "pandas", "cudf"] = Field(
        "auto",
        description="Where the dedup phases run: pandas/numpy, or cuDF/CuPy on a GPU (curate.backend).",
    )
    stages: list[dict[str, Any]] = Field(min_length=1, description="Ordered stage list.")


@dataclass(frozen=True)
class StageSpec:
    """One validated stage: its id in this pipeline, its class and its typed config."""

    id: str
    cls: type[Stage]
    config: StageConfig

    @property
    def params(self) -> dict[str, Any]:
        return stage_params(self.config)


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file."""

    path: str
    input_files: tuple[str, ...]
    output_dir: Path
    rejects: bool
    executor: ExecutorConfig
    backend: str
    stages: tuple[StageSpec, ...]
    file_sha256: str


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys accepted at `loc` (for 'did you mean' hints on misspelt keys)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        # `Sub | None` fields: look through the Optional to the nested config.
        candidates = typing.get_args(field.annotation) or (field.annotation,) if field else ()
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def _format_pydantic(err: ValidationError, model: type[BaseModel]) -> str:
    # An unknown key usually explains a "missing" one next to it (a typo), so it is reported first.
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, first["loc"])
        close = difflib.get_close_matches(str(first["loc"][-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"unknown key '{where}'; {hint}"
    if kind == "missing":
        return f"missing required key '{where}'"
    got = first.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"key '{where}': {first['msg']}{got_text}"


def _resolve_inputs(patterns: list[str], fail) -> tuple[str, ...]:
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            fail(
                f"key 'input.paths': no file matches {pattern!r}; check the path (relative to {os.getcwd()})"
            )
        files.extend(m for m in matches if os.path.isfile(m))
    # A file listed twice would be processed twice and duplicate every document.
    return tuple(dict.fromkeys(files))


def _stage_spec(entry: Any, index: int, seen: set[str], fail) -> StageSpec:
    if not isinstance(entry, dict) or "stage" not in entry:
        fail(f"stages[{index}] must be a mapping with a 'stage:' key, e.g. '- stage: extract'")
    params = dict(entry)
    stage_name = params.pop("stage")
    stage_id = params.pop("name", None) or stage_name
    where = f"stages[{index}] ({stage_id})"
    try:
        cls = registry.lookup(str(stage_name))
    except KeyError as err:
        fail(f"{where}: {err.args[0]}")
    if stage_id in seen:
        fail(f"{where}: duplicate stage name {stage_id!r}; give one of them 'name: <unique id>'")
    seen.add(stage_id)
    try:
        config = cls.Config(**params)
    except ValidationError as err:
        fail(f"{where}: {_format_pydantic(err, cls.Config)}")
    return StageSpec(id=str(stage_id), cls=cls, config=config)


def load_pipeline(path: str | os.PathLike) -> Pipeline:
    """Load and fully validate a pipeline file; raise PipelineConfigError naming the bad key."""
    path = str(path)

    def fail(message: str):
        raise PipelineConfigError(f"{path}: {message}")

    try:
        raw_bytes = Path(path).read_bytes()
    except OSError as err:
        raise PipelineConfigError(f"{path}: cannot read pipeline file ({err.strerror})") from None
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        fail(f"invalid YAML{line}: {getattr(err, 'problem', err)}")
    if not isinstance(raw, dict):
        fail("top level must be a mapping with input, output, stages")
    try:
        schema = PipelineSchema(**raw)
    except ValidationError as err:
        fail(_format_pydantic(err, PipelineSchema))

    seen: set[str] = set()
    stages = tuple(_stage_spec(entry, i, seen, fail) for i, entry in enumerate(schema.stages))
    if stages[0].cls.kind != "source":
        fail(f"stages[0] ({stages[0].id}): the first stage must read the input (e.g. 'stage: warc_ingest')")
    for i, spec in enumerate(stages[1:], start=1):
        if spec.cls.kind == "source":
            fail(f"stages[{i}] ({spec.id}): a source stage can only be first")
    if schema.backend == "cudf" and (problem := cudf_problem()) is not None:
        fail(f"key 'backend': 'cudf' cannot run here: {problem}; use 'auto' to fall back to pandas")

    address = schema.executor.address
    if address is not None and "://" not in address:
        fail(f"key 'executor.address': {address!r} is not a scheduler address; use e.g. tcp://host:8786")
    input_files = _resolve_inputs(schema.input.paths, fail)

    return Pipeline(
        path=path,
        input_files=input_files,
        output_dir=Path(schema.output.dir),
        rejects=schema.output.rejects,
        executor=schema.executor,
        backend=schema.backend,
        stages=stages,
        file_sha256=hashlib.sha256(raw_bytes).hexdigest(),
    )


def fingerprint(specs: tuple[StageSpec, ...] | list[StageSpec], parent: str = "") -> str:
    """A hash of the stage chain's names and configs: changes when any of them changes."""
    payload = json.dumps([parent] + [[s.id, s.cls.name, s.params] for s in specs], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
