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
import re
import socket
import typing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curate import registry
from curate.backend import cudf_problem
from curate.output_dir import output_dir_problem
from curate.stage import Stage, StageConfig, stage_params

# `host:port`, `:port` or `[ipv6]:port`: the forms a LocalCluster dashboard address takes.
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(?P<port>\d{1,5})$")


class PipelineConfigError(ValueError):
    """A pipeline file that cannot run; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Strict):
    paths: list[str] = Field(description="Input files or globs, relative to the working directory.")

    @field_validator("paths")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no input listed; give files or globs, e.g. [data/samples/*.warc.gz]")
        return value


class OutputConfig(_Strict):
    dir: str = Field(description="Output directory: segment parts, markers, stats.json, funnel report.")
    rejects: bool = Field(
        False, description="Also write dropped documents (with drop_reason) to dir/rejects/."
    )

    @field_validator("dir")
    @classmethod
    def _dir_can_be_written(cls, value: str) -> str:
        # Checked here, not when the run creates it: a run must not fail after its work has started.
        if problem := output_dir_problem(Path(value)):
            raise ValueError(f"{problem}; choose another output dir")
        return value


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

    @field_validator("address")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, sep, location = value.partition("://")
        if not sep or not location:
            raise ValueError(f"{value!r} is not a scheduler address; use e.g. tcp://host:8786")
        import distributed.comm  # noqa: F401 - registers the transports; slow, so only when needed
        from distributed.comm.registry import get_backend

        try:
            get_backend(scheme)
        except ValueError as err:
            raise ValueError(f"{value!r}: {err}; use e.g. tcp://host:8786") from None
        return value

    @field_validator("memory_limit")
    @classmethod
    def _memory_parses(cls, value: str) -> str:
        if value != "auto":
            from dask.utils import parse_bytes  # imports dask; only when there is a size to parse

            try:
                parse_bytes(value)
            except (ValueError, TypeError):
                raise ValueError(f"{value!r} is not a size; use 'auto' or e.g. '4GB', '512MiB'") from None
        return value

    @field_validator("dashboard_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        match = _HOST_PORT.match(value)
        if match is None or int(match["port"]) > 65535:
            raise ValueError(f"{value!r} is not host:port or :port; use e.g. ':8787' or '127.0.0.1:8787'")
        host = match["host"].strip("[]")
        if host:
            try:
                socket.getaddrinfo(host, None)
            except OSError as err:
                raise ValueError(
                    f"host {host!r} of {value!r} does not resolve ({err}); use e.g. ':8787'"
                ) from None
        return value


# The keys that only size the embedded LocalCluster; a scheduler at `address` brings its own workers.
LOCAL_CLUSTER_KEYS = ("workers", "threads_per_worker", "memory_limit", "processes", "dashboard_address")


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
    skipped_input_dirs: tuple[str, ...]  # directories that `input.paths` globs matched; not read
    output_dir: Path
    rejects: bool
    executor: ExecutorConfig
    backend: str
    stages: tuple[StageSpec, ...]
    file_sha256: str
    # The file's LocalCluster keys that `--address` on the command line leaves unused (printed as a note).
    unused_executor_keys: tuple[str, ...] = ()


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


def _resolve_inputs(patterns: list[str], fail) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The input files the patterns match, and the directories their globs matched (not read)."""
    files: list[str] = []
    skipped_dirs: list[str] = []
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        if not glob.has_magic(expanded) and os.path.isdir(expanded):
            # The commonest file type in it (`.warc.gz`, `.parquet`) makes the example glob.
            types = Counter("".join(p.suffixes) for p in Path(expanded).iterdir() if p.is_file())
            example = os.path.join(pattern.rstrip("/"), "*" + (types.most_common(1)[0][0] if types else ""))
            fail(
                f"key 'input.paths': {pattern!r} is a directory; name its files with a glob, e.g. {example!r}"
            )
        matches = sorted(glob.glob(expanded))
        if not matches:
            fail(
                f"key 'input.paths': no file matches {pattern!r}; check the path (relative to {os.getcwd()})"
            )
        files.extend(m for m in matches if os.path.isfile(m))
        skipped_dirs.extend(m for m in matches if os.path.isdir(m))
    if not files:
        fail(
            f"key 'input.paths': no input file, only directories match {', '.join(map(repr, patterns))}; "
            "use a glob of files, e.g. 'data/samples/*.warc.gz'"
        )
    # A file listed twice would be processed twice and duplicate every document.
    return tuple(dict.fromkeys(files)), tuple(dict.fromkeys(skipped_dirs))


def _check_input_types(files: tuple[str, ...], source: StageSpec, fail) -> None:
    """Fail on the first input file that the source stage does not read (its `input_suffixes`)."""
    suffixes = source.cls.input_suffixes
    other = [f for f in files if suffixes is not None and not f.endswith(suffixes)]
    if other:
        fail(
            f"key 'input.paths': {other[0]!r} is not a file that {source.id} reads ({', '.join(suffixes)}); "
            f"narrow the glob to those, e.g. '*{suffixes[0]}'"
        )


def _unused_local_cluster_keys(file_executor: dict, overrides: dict[str, Any], fail) -> tuple[str, ...]:
    """With a scheduler address, the LocalCluster keys that were set: an error, or a note for --address.

    Dask itself refuses `Client(address, n_workers=...)`: a scheduler's workers are started with it
    (`dask worker --nworkers`), so asking for workers here cannot be honoured. The one legitimate mix is a
    file sized for local runs taken to a cluster with `--address` for this run (docker-compose does
    that): the file's keys are then only unused, which the command prints.
    """
    from_flags = [k for k in LOCAL_CLUSTER_KEYS if k in overrides]
    from_file = [k for k in LOCAL_CLUSTER_KEYS if k in file_executor]
    address = "--address" if "address" in overrides else "executor.address"
    if from_flags or (from_file and "address" not in overrides):
        key = (from_flags or from_file)[0]
        setting = f"--{key}" if from_flags else f"executor.{key}"
        fail(
            f"{setting} and {address} together: {setting} applies to the embedded LocalCluster only, and with "
            f"an address the tasks run on that scheduler's own workers (start them with "
            f"`dask worker ADDRESS --nworkers N`); remove one of the two"
        )
    return tuple(from_file)


def _stage_spec(entry: Any, index: int, seen: set[str], fail) -> StageSpec:
    if not isinstance(entry, dict) or "stage" not in entry:
        fail(f"stages[{index}] must be a mapping with a 'stage:' key, e.g. '- stage: extract'")
    params = dict(entry)
    stage_name = params.pop("stage")
    stage_id = params.pop("name", None) or stage_name
    if not isinstance(stage_id, str):
        key = "name" if "name" in entry and entry["name"] else "stage"
        fail(f"stages[{index}]: key '{key}' must be a string (got {stage_id!r}), e.g. '{key}: extract'")
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
    return StageSpec(id=stage_id, cls=cls, config=config)


# What the engine itself writes directly under output.dir; a stage writing there would mix files.
_ENGINE_OUTPUTS = re.compile(r"^(segment-\d+|rejects|stats\.json|funnel\.png)$")


def _check_output_dirs(stages: tuple[StageSpec, ...], output_dir: Path, fail) -> None:
    """Each stage's output directory must be relative, inside output.dir, its own, and not a file."""
    owners: dict[Path, str] = {}
    for i, spec in enumerate(stages):
        key = spec.cls.output_key
        if key is None:
            continue
        value = getattr(spec.config, key)
        where = f"stages[{i}] ({spec.id}): key '{key}'"
        relative = Path(os.path.normpath(value))
        if relative.is_absolute() or relative.parts[:1] in ((), ("..",)):
            example = spec.cls.Config.model_fields[key].default
            fail(f"{where}: {value!r} must be a directory inside output.dir, e.g. {example!r}")
        if _ENGINE_OUTPUTS.match(relative.parts[0]):
            fail(f"{where}: {value!r} is where the engine writes its own files; choose another name")
        for other, owner in owners.items():
            if relative == other or other in relative.parents or relative in other.parents:
                fail(f"{where}: {value!r} overlaps {str(other)!r} of {owner}; give each writer its own path")
        for part in (relative, *relative.parents[:-1]):
            if (output_dir / part).exists() and not (output_dir / part).is_dir():
                fail(f"{where}: {str(output_dir / part)!r} is a file; remove it or choose another path")
        owners[relative] = f"stages[{i}] ({spec.id})"


def load_pipeline(path: str | os.PathLike, executor_overrides: dict[str, Any] | None = None) -> Pipeline:
    """Load and fully validate a pipeline file; raise PipelineConfigError naming the bad key.

    `executor_overrides` (command-line flags) replace `executor` keys and are validated like them.
    """
    path = str(path)
    overrides = executor_overrides or {}

    def fail(message: str):
        if any(f"'executor.{key}'" in message for key in overrides):
            message += " (set on the command line)"
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
    file_executor = raw.get("executor") or {}
    if overrides:
        if not isinstance(file_executor, dict):
            fail(f"key 'executor' must be a mapping (got {file_executor!r})")
        raw = {**raw, "executor": {**file_executor, **overrides}}
    try:
        schema = PipelineSchema(**raw)
    except ValidationError as err:
        fail(_format_pydantic(err, PipelineSchema))
    unused_executor_keys = ()
    if schema.executor.address is not None:
        unused_executor_keys = _unused_local_cluster_keys(file_executor, overrides, fail)

    seen: set[str] = set()
    stages = tuple(_stage_spec(entry, i, seen, fail) for i, entry in enumerate(schema.stages))
    if stages[0].cls.kind != "source":
        fail(f"stages[0] ({stages[0].id}): the first stage must read the input (e.g. 'stage: warc_ingest')")
    for i, spec in enumerate(stages[1:], start=1):
        if spec.cls.kind == "source":
            fail(f"stages[{i}] ({spec.id}): a source stage can only be first")
    if schema.backend == "cudf" and (problem := cudf_problem()) is not None:
        fail(f"key 'backend': 'cudf' cannot run here: {problem}; use 'auto' to fall back to pandas")

    _check_output_dirs(stages, Path(schema.output.dir), fail)
    input_files, skipped_dirs = _resolve_inputs(schema.input.paths, fail)
    _check_input_types(input_files, stages[0], fail)

    return Pipeline(
        path=path,
        input_files=input_files,
        skipped_input_dirs=skipped_dirs,
        output_dir=Path(schema.output.dir),
        rejects=schema.output.rejects,
        executor=schema.executor,
        backend=schema.backend,
        stages=stages,
        file_sha256=hashlib.sha256(raw_bytes).hexdigest(),
        unused_executor_keys=unused_executor_keys,
    )


def fingerprint(specs: tuple[StageSpec, ...] | list[StageSpec], parent: str = "") -> str:
    """A hash of the stage chain's names and configs: changes when any of them changes."""
    payload = json.dumps([parent] + [[s.id, s.cls.name, s.params] for s in specs], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
