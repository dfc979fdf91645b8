"""`train` CLI: every bad argument is one line on stderr and exit code 2; YAML and flags combine."""

from __future__ import annotations

import json

import pytest
import yaml

from curate.stages.langid import file_sha256
from tests.train.serve_checkpoint import write_checkpoint
from train.cli import main
from train.config import load_pretrain_config


def one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--data", "/no/such/dir"],
            "train pretrain: error: --data: data directory /no/such/dir does not exist",
        ),
        (["--data", "{shards}:abc"], "weight 'abc' is not a number"),
        (["--data", "{shards}:0"], "weight must be a positive number"),
        (["--data", "{shards}", "--preset", "xl"], "--preset: unknown preset 'xl'; choose from tiny, 124m"),
        (
            ["--data", "{shards}", "--global-batch-size", "10", "--micro-batch-size", "4"],
            "global_batch_size 10 is not divisible by micro_batch_size 4",
        ),
        (["--data", "{shards}", "--lr", "fast"], "--lr: Input should be a valid number"),
        (["--data", "{shards}", "--lr", "inf"], "--lr: Input should be a finite number"),
        (
            ["--data", "{shards}", "--rope-theta", "nan"],
            "error: --rope-theta: Input should be a finite number",
        ),
        (
            ["--data", "{shards}", "--micro-batch-size", "0"],
            "--micro-batch-size: Input should be greater than 0",
        ),
        (["--data", "{shards}", "--device", "tpu"], "--device: Input should be 'auto', 'cpu' or 'cuda'"),
        (
            ["--data", "{shards}", "--n-kv-head", "3"],
            "error: model: n_head 4 is not divisible by n_kv_head 3",
        ),
        (["--data", "{shards}", "--warmup-steps", "50", "--max-steps", "10"], "warmup_steps 50 is more than"),
        (["--data", "{shards}", "--n-layer", "0"], "error: --n-layer: Input should be greater than 0"),
        (
            ["--data", "{shards}", "{shards}:2"],
            "error: --data: data directory {shards} is given twice; give it once, with the sum of the weights",
        ),
        (
            ["--data", "{shards}", "{shards}/../web"],
            "error: --data: data directory {shards}/../web is given twice (also as {shards}); give it once",
        ),
        (["--out", "x"], "--data: required"),
        (["--data", "{shards}", "--colour", "red"], "unrecognized arguments: --colour red"),
        (["--data", "{shards}", "--resume"], "--resume: no checkpoint under"),
    ],
)
def test_bad_pretrain_arguments_are_one_line_errors(capsys, shards, tmp_path, extra, expected):
    argv = ["pretrain", "--out", str(tmp_path / "run"), "--preset", "tiny", "--no-progress"]
    argv += [a.format(shards=shards) for a in extra]
    assert expected.format(shards=shards) in one_line_error(capsys, argv)


def test_config_file_errors_name_the_file_and_key(capsys, shards, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": [str(shards)], "out": str(tmp_path / "r"), "lrr": 0.1}))
    assert f"{path}: key 'lrr': unknown setting" in one_line_error(
        capsys, ["pretrain", "--config", str(path)]
    )
    path.write_text(
        yaml.safe_dump({"data": [{"path": str(shards), "weight": 0}], "out": str(tmp_path / "r")})
    )
    assert f"{path}: key 'data': data {shards}: weight must be a positive number, got 0" in one_line_error(
        capsys, ["pretrain", "--config", str(path)]
    )
    path.write_text(
        yaml.safe_dump({"data": [str(shards)], "out": str(tmp_path / "r"), "model": {"vocab_size": 5}})
    )
    assert f"{path}: key 'model.vocab_size': comes from the shards' tokenizer" in one_line_error(
        capsys, ["pretrain", "--config", str(path)]
    )
    for model, expected in [
        ({"n_layer": 0}, "key 'model.n_layer': Input should be greater than 0"),
        ({"n_layers": 2}, "key 'model.n_layers': unknown model setting; choose from n_layer, d_model"),
        ({"n_kv_head": 3}, "key 'model': n_head 4 is not divisible by n_kv_head 3"),
    ]:
        settings = {"data": [str(shards)], "out": str(tmp_path / "r"), "preset": "tiny", "model": model}
        path.write_text(yaml.safe_dump(settings))
        assert f"error: {path}: {expected}" in one_line_error(capsys, ["pretrain", "--config", str(path)])
    # A flag's value is named by the flag, though the file sets other model keys.
    argv = ["pretrain", "--config", str(path), "--n-layer", "0"]
    assert "error: --n-layer: Input should be greater than 0" in one_line_error(capsys, argv)
    path.write_bytes(b"lr: 0.1\n\xff\n")
    assert f"--config: {path} is not UTF-8 text (byte 8)" in one_line_error(
        capsys, ["pretrain", "--config", str(path)]
    )
    path.write_text("data: [unclosed")
    assert "not valid YAML" in one_line_error(capsys, ["pretrain", "--config", str(path)])
    missing = tmp_path / "missing.yaml"
    assert f"--config: {missing} does not exist" in one_line_error(
        capsys, ["pretrain", "--config", str(missing)]
    )


def test_flags_override_the_config_file(shards, other_shards, tmp_path):
    path = tmp_path / "run.yaml"
    settings = {
        "data": [str(shards)],
        "out": str(tmp_path / "r"),
        "preset": "tiny",
        "lr": 0.01,
        "max_steps": 50,
        "warmup_steps": 10,
        "model": {"n_layer": 3, "d_model": 96, "n_head": 6, "n_kv_head": 2},
    }
    path.write_text(yaml.safe_dump(settings))
    cfg = load_pretrain_config(
        path, {"max_steps": "70", "data": [f"{shards}:3", f"{other_shards}"], "model": {"n_layer": "5"}}
    )
    assert (cfg.lr, cfg.max_steps) == (0.01, 70)
    assert [(s.path, s.weight) for s in cfg.data] == [(shards, 3.0), (other_shards, 1.0)]
    model = cfg.build_model_config(vocab_size=320)
    assert (model.n_layer, model.d_model, model.n_kv_head, model.max_seq_len) == (5, 96, 2, 256)


def test_junk_weights_are_one_line_naming_the_file(capsys, shards, tokenizer_file, tmp_path):
    checkpoint = write_checkpoint(tmp_path, tokenizer_file, max_seq_len=64)
    state = json.loads((checkpoint / "state.json").read_text())
    state.update(
        trajectory={"seq_len": 64, "seed": 0, "valid_fraction": 0.0},
        tokenizer_sha256=file_sha256(tokenizer_file),
    )
    (checkpoint / "state.json").write_text(json.dumps(state))
    (checkpoint / "model.safetensors").write_text("not tensors")
    expected = f"{checkpoint / 'model.safetensors'} is not a valid safetensors checkpoint"
    for argv in (
        ["eval", str(checkpoint), "--data", str(shards)],
        ["generate", "--checkpoint", str(checkpoint), "--prompt", "The cat"],
        ["export", "--checkpoint", str(checkpoint), "--hf", str(tmp_path / "hf")],
    ):
        assert expected in one_line_error(capsys, argv), argv
    # The data is checked before the weights are read.
    missing = tmp_path / "no-shards"
    err = one_line_error(capsys, ["eval", str(checkpoint), "--data", str(missing)])
    assert f"error: --data: data directory {missing} does not exist" in err
    err = one_line_error(capsys, ["eval", str(checkpoint), "--data", str(tmp_path)])
    assert f"error: --data: {tmp_path / 'metadata.json'}: missing; is {tmp_path} a shard directory?" in err


def test_eval_errors_are_one_line(capsys, shards, tmp_path):
    err = one_line_error(capsys, ["eval", str(tmp_path / "nothing"), "--data", str(shards)])
    assert "is neither a checkpoint nor a run directory" in err
    err = one_line_error(capsys, ["eval", str(tmp_path), "--data", str(shards), "--micro-batch-size", "0"])
    assert "--micro-batch-size must be positive" in err


def test_an_empty_output_directory_is_refused(capsys, shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where an empty path would write
    missing = str(tmp_path / "missing")
    for argv, flag in [
        (["pretrain", "--data", str(shards), "--preset", "tiny", "--out", ""], "--out"),
        (["finetune", "sft", "--base", missing, "--data", missing, "--out", ""], "--out"),
        (["finetune", "merge", missing, "--out", ""], "--out"),
        (["export", "--checkpoint", missing, "--hf", ""], "--hf"),
        (["import", "--hf", missing, "--out", " "], "--out"),
    ]:
        err = one_line_error(capsys, argv)
        assert f"error: {flag}: the path is empty; name a directory (. for the current one)" in err, argv
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("under_file", [False, True])
def test_an_output_directory_that_is_a_file_is_refused_before_any_work(capsys, shards, tmp_path, under_file):
    file = tmp_path / "taken"
    file.write_text("")
    out = file / "run" if under_file else file
    expected = f"{out} is under {file}, which is a file" if under_file else f"{out} is a file"
    missing = str(tmp_path / "missing")
    for argv, flag in [
        (["pretrain", "--data", str(shards), "--preset", "tiny", "--out", str(out)], "--out"),
        (["finetune", "sft", "--base", missing, "--data", missing, "--out", str(out)], "--out"),
        (["finetune", "merge", missing, "--out", str(out)], "--out"),
        (["export", "--checkpoint", missing, "--hf", str(out)], "--hf"),
        (["import", "--hf", missing, "--out", str(out)], "--out"),
    ]:
        assert f"error: {flag}: {expected}; name a directory" in one_line_error(capsys, argv), argv


def test_a_learning_rate_that_diverges_is_one_line_naming_lr(capsys, shards, tmp_path):
    out = tmp_path / "run"
    argv = ["pretrain", "--data", str(shards), "--out", str(out), "--preset", "tiny", "--no-progress"]
    argv += ["--seq-len", "32", "--micro-batch-size", "4", "--global-batch-size", "4", "--max-steps", "4"]
    argv += ["--warmup-steps", "0", "--lr", "1e30", "--log-every", "1", "--valid-fraction", "0"]
    assert "training diverged; lower --lr" in one_line_error(capsys, argv)
    # As before: no train record of the diverged step, no checkpoint, no end record.
    kinds = [json.loads(line)["kind"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "end" not in kinds and not (out / "checkpoints").exists()
