"""Bad pipeline files fail before any work, with one line naming the file, the stage and the key."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("memory_limit", "lots", "'lots' is not a size"),
        ("dashboard_address", "not an address", "is not host:port or :port"),
        ("dashboard_address", "nohost.invalid:8787", "does not resolve"),
        ("address", "foo://bar", "unknown address scheme 'foo'"),
        ("address", "tcp://", "is not a scheduler address"),
    ],
)
def test_executor_values_dask_cannot_use_are_config_errors(write_pipeline, warc, tmp_path, key, value, error):
    message = error_of(write_pipeline(base(warc, tmp_path, executor={key: value})))
    assert f"key 'executor.{key}'" in message and error in message


def test_executor_values_dask_accepts_load(write_pipeline, warc, tmp_path):
    executor = {"memory_limit": "512MiB", "dashboard_address": "127.0.0.1:0"}
    assert (
        load_pipeline(write_pipeline(base(warc, tmp_path, executor=executor))).executor.memory_limit
        == "512MiB"
    )
    address = {"address": "tcp://127.0.0.1:8786"}
    assert load_pipeline(write_pipeline(base(warc, tmp_path, executor=address))).executor.address


@pytest.mark.parametrize(
    ("executor", "flags", "error"),
    [
        ({"address": "tcp://127.0.0.1:8786", "workers": 2}, {}, "executor.workers and executor.address"),
        ({"address": "tcp://127.0.0.1:8786", "memory_limit": "4GB"}, {}, "executor.memory_limit and"),
        ({"address": "tcp://127.0.0.1:8786"}, {"workers": 2}, "--workers and executor.address"),
        ({}, {"workers": 2, "address": "tcp://127.0.0.1:8786"}, "--workers and --address"),
        ({"workers": 2}, {"workers": 3, "address": "tcp://127.0.0.1:8786"}, "--workers and --address"),
    ],
)
def test_local_cluster_keys_with_a_scheduler_address_are_config_errors(
    write_pipeline, warc, tmp_path, executor, flags, error
):
    # Dask's own Client(address, n_workers=...) refuses this: a scheduler's workers are its own.
    path = write_pipeline(base(warc, tmp_path, executor=executor))
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path, flags)
    assert error in str(info.value) and "applies to the embedded LocalCluster only" in str(info.value)


def test_address_flag_leaves_the_files_local_cluster_keys_unused_with_a_note(write_pipeline, warc, tmp_path):
    # A file sized for local runs, taken to a cluster for one run (docker-compose runs web.yaml so).
    executor = {"workers": 2, "threads_per_worker": 1}
    path = write_pipeline(base(warc, tmp_path, executor=executor))
    pipeline = load_pipeline(path, {"address": "tcp://127.0.0.1:8786"})
    assert pipeline.unused_executor_keys == ("workers", "threads_per_worker")
    assert load_pipeline(path).unused_executor_keys == ()
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(path), "--address", "tcp://127.0.0.1:9"],
        capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        "note: executor.workers, executor.threads_per_worker not used: "
        "--address runs the tasks on that scheduler's workers"
    )


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"workers": -1}, "key 'executor.workers'"),
        ({"workers": 0}, "key 'executor.workers'"),
        ({"address": "localhost:8786"}, "key 'executor.address'"),
    ],
)
def test_command_line_overrides_are_validated_like_the_file(write_pipeline, warc, tmp_path, overrides, error):
    path = write_pipeline(base(warc, tmp_path))
    with pytest.raises(PipelineConfigError, match=rf"{error}.*\(set on the command line\)"):
        load_pipeline(path, overrides)
    assert load_pipeline(path, {"workers": 3}).executor.workers == 3


def test_cli_run_refuses_bad_overrides_before_any_work(write_pipeline, warc, tmp_path):
    path = write_pipeline(base(warc, tmp_path))
    for flags in (["--workers", "-1"], ["--workers", "0"], ["--address", "localhost:8786"]):
        proc = subprocess.run(
            [sys.executable, "-m", "curate.cli", "run", str(path), *flags],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 2, (flags, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "(set on the command line)" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_output_dir_that_cannot_be_a_directory(write_pipeline, warc, tmp_path, where):
    (tmp_path / "taken").write_text("not a directory")
    out = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "out"
    message = error_of(write_pipeline(base(warc, tmp_path, output={"dir": str(out)})))
    assert "key 'output.dir'" in message and "choose another output dir" in message


def test_unwritable_output_dir(write_pipeline, warc, tmp_path, monkeypatch):
    # Root may write anywhere, so the permission itself is simulated.
    monkeypatch.setattr("curate.config.os.access", lambda path, mode: False)
    message = error_of(write_pipeline(base(warc, tmp_path)))
    assert "key 'output.dir'" in message and "is not writable" in message


def writers(*paths: str) -> list[dict]:
    kinds = ["write_parquet", "write_jsonl"]
    return [{"stage": "warc_ingest"}] + [{"stage": kinds[i % 2], "path": p} for i, p in enumerate(paths)]


@pytest.mark.parametrize(
    ("paths", "error"),
    [
        (["../escaped"], "stages[1] (write_parquet): key 'path': '../escaped' must be a directory inside"),
        (["/abs/dir"], "'/abs/dir' must be a directory inside output.dir"),
        (["."], "'.' must be a directory inside output.dir"),
        (["a/../.."], "must be a directory inside output.dir"),
        (["same", "same"], "stages[2] (write_jsonl): key 'path': 'same' overlaps 'same' of stages[1]"),
        (["data", "data/jsonl"], "'data/jsonl' overlaps 'data'"),
        (["rejects"], "is where the engine writes its own files"),
        (["segment-00"], "is where the engine writes its own files"),
    ],
)
def test_writer_paths_stay_inside_the_output_dir_and_apart(write_pipeline, warc, tmp_path, paths, error):
    assert error in error_of(write_pipeline(base(warc, tmp_path, stages=writers(*paths))))


def test_writer_path_that_is_an_existing_file(write_pipeline, warc, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dataset").write_text("a file")
    message = error_of(write_pipeline(base(warc, tmp_path, stages=writers("dataset/sub"))))
    assert "key 'path'" in message and "is a file" in message


def test_no_input_listed(write_pipeline, warc, tmp_path):
    message = error_of(write_pipeline(base(warc, tmp_path, input={"paths": []})))
    assert "key 'input.paths'" in message and "no input listed" in message


def test_a_directory_as_input_suggests_a_glob(write_pipeline, tmp_path):
    (tmp_path / "crawl").mkdir()
    for name in ("a.warc.gz", "b.warc.gz", "README.md"):
        (tmp_path / "crawl" / name).write_bytes(b"")
    message = error_of(write_pipeline(base(str(tmp_path / "crawl"), tmp_path)))
    assert "is a directory; name its files with a glob" in message and "crawl/*.warc.gz" in message


def test_an_input_file_the_source_stage_does_not_read_fails_before_any_work(write_pipeline, tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("a.parquet", "b.jsonl.gz", "notes.txt"):
        (tmp_path / "data" / name).write_bytes(b"")
    stages = [{"stage": "read_parquet"}, {"stage": "write_parquet"}]
    message = error_of(write_pipeline(base(str(tmp_path / "data" / "*"), tmp_path, stages=stages)))
    assert (
        f"key 'input.paths': '{tmp_path / 'data' / 'notes.txt'}' is not a file that read_parquet reads"
        in message
    )
    assert "'*.parquet'" in message
    narrowed = base(
        tmp_path,
        tmp_path,
        stages=stages,
        input={"paths": [str(tmp_path / "data" / g) for g in ("*.parquet", "*.gz")]},
    )
    assert len(load_pipeline(write_pipeline(narrowed)).input_files) == 2
    # warc_ingest reads any file: one that is no WARC is counted when read, not refused here.
    assert load_pipeline(write_pipeline(base(str(tmp_path / "data" / "*"), tmp_path))).input_files


def test_a_glob_of_only_directories_is_an_error_and_matched_directories_are_reported(
    write_pipeline, warc, tmp_path
):
    (tmp_path / "crawl" / "sub").mkdir(parents=True)
    message = error_of(write_pipeline(base(str(tmp_path / "crawl" / "*"), tmp_path)))
    assert "key 'input.paths': no input file, only directories match" in message
    (tmp_path / "crawl" / "a.warc.gz").write_bytes(b"")
    pipeline = load_pipeline(write_pipeline(base(str(tmp_path / "crawl" / "*"), tmp_path)))
    assert pipeline.input_files == (str(tmp_path / "crawl" / "a.warc.gz"),)
    assert pipeline.skipped_input_dirs == (str(tmp_path / "crawl" / "sub"),)


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"stage": "extract", "name": ["x"]}, "stages[1]: key 'name' must be a string"),
        ({"stage": ["extract"]}, "stages[1]: key 'stage' must be a string"),
        ({"stage": ":Foo"}, "stages[1] (:Foo): cannot import stage ':Foo'"),
    ],
)
def test_stage_and_name_that_are_no_names(write_pipeline, warc, tmp_path, entry, error):
    config = base(warc, tmp_path, stages=[{"stage": "warc_ingest"}, entry])
    assert error in error_of(write_pipeline(config))
