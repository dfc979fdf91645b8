"""The training loop on the tiny preset: it learns, it resumes exactly, it refuses an inconsistent resume,
accumulation and two-process DDP match one big batch."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from tests.train.test_cli import one_line_error
from train.cli import main
from train.config import ConfigError, PretrainConfig
from train.evaluate import evaluate_checkpoint
from train.metrics import read_metrics
from train.pretrain import pretrain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: bitwise-repeatable reductions, and no fight over the CI machine's cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def settings(shards, out, **changes) -> PretrainConfig:
    base = dict(
        data=[str(shards)],
        out=out,
        preset="tiny",
        seq_len=32,
        micro_batch_size=4,
        global_batch_size=8,
        max_steps=30,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=3,
        valid_fraction=0.05,
        eval_every=10,
        eval_samples=64,
        log_every=1,
        ckpt_every=10,
        progress=False,
        deterministic=True,
    )
    return PretrainConfig(**{**base, **changes})


def run(cfg: PretrainConfig) -> dict:
    return pretrain(cfg, console=Console(file=io.StringIO()))


def train_losses(out) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl", "train")]


def test_tiny_model_learns_and_reports(shards, tmp_path):
    out = tmp_path / "run"
    result = run(settings(shards, out))
    losses = train_losses(out)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0
    valid = read_metrics(out / "metrics.jsonl", "valid")
    assert [r["step"] for r in valid] == [10, 20, 30]
    assert valid[-1]["loss"] < valid[0]["loss"] and result["valid_loss"] == valid[-1]["loss"]
    start = read_metrics(out / "metrics.jsonl", "start")[0]
    assert "6·N + 12·L·d·T" in start["mfu_convention"] and start["peak_flops"] is None
    step = read_metrics(out / "metrics.jsonl", "train")[-1]
    assert step["mfu"] is None and step["tokens_per_s"] > 0 and step["consumed_samples"] == 240
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000020", "step_0000030"]


def test_a_resumed_run_repeats_the_uninterrupted_one_bitwise(shards, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(settings(shards, straight, max_steps=16, ckpt_every=5))
    first = run(settings(shards, resumed, max_steps=16, ckpt_every=5, stop_after=7))
    assert first["step"] == 7 and (resumed / "checkpoints" / "step_0000007").is_dir()
    run(settings(shards, resumed, max_steps=16, ckpt_every=5, resume=True))

    assert train_losses(resumed) == train_losses(straight)  # exact float equality, every step
    weights = [
        load_file(out / "checkpoints" / "step_0000016" / "model.safetensors") for out in (straight, resumed)
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    kinds = [r["kind"] for r in read_metrics(resumed / "metrics.jsonl")]
    assert kinds.count("resume") == 1 and kinds[-1] == "end"


def test_resume_refuses_what_would_not_continue_the_same_run(shards, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="--resume: no checkpoint under"):
        run(settings(shards, out, resume=True))
    run(settings(shards, out, max_steps=4, warmup_steps=1))
    with pytest.raises(ConfigError, match="already holds checkpoints; pass --resume"):
        run(settings(shards, out, max_steps=4, warmup_steps=1))
    with pytest.raises(ConfigError, match="--resume: lr is 0.001 but 0.003"):
        run(settings(shards, out, max_steps=4, warmup_steps=1, lr=1e-3, resume=True))
    # Values are quoted as JSON: a hand-edited "0.003" is told apart from the number it looks like.
    [state_file] = (out / "checkpoints").glob("step_*/state.json")
    state = json.loads(state_file.read_text())
    state["trajectory"]["lr"] = str(state["trajectory"]["lr"])
    state_file.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match='--resume: lr is 0.003 but "0.003"'):
        run(settings(shards, out, max_steps=4, warmup_steps=1, resume=True))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(step="2"), 'step must be a non-negative integer, not "2"'),
        (lambda s: s.update(step=-3), "step must be a non-negative integer, not -3"),
        (lambda s: s.update(step=True), "step must be a non-negative integer, not true"),
        (lambda s: s.update(step=None), "step must be a non-negative integer, not null"),
        (
            lambda s: s.update(consumed_samples=1.5),
            "consumed_samples must be a non-negative integer, not 1.5",
        ),
        (lambda s: s.update(trajectory=None), "trajectory must be a JSON object, not null"),
        (
            lambda s: s["trajectory"].update(seq_len="32"),
            'trajectory.seq_len must be a positive integer, not "32"',
        ),
        (lambda s: s.update(tokenizer_sha256=None), "tokenizer_sha256 must be a sha256 hex digest, not null"),
        (lambda s: s.update(step=3), "step is 3 but the directory is step_0000002"),
        (
            lambda s: s.update(consumed_samples=15),
            "consumed_samples is 15, not step 2 × global batch 8 = 16",
        ),
    ],
)
def test_resume_from_a_state_json_of_wrong_types_is_one_line_naming_the_key(
    capsys, shards, tmp_path, edit, message
):
    argv = [
        "pretrain", "--data", str(shards), "--out", str(tmp_path / "run"), "--preset", "tiny", "--seq-len", "32",
        "--micro-batch-size", "4", "--global-batch-size", "8", "--max-steps", "4", "--warmup-steps", "1",
        "--eval-every", "0", "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert main([*argv, "--stop-after", "2"]) == 0
    state_file = tmp_path / "run" / "checkpoints" / "step_0000002" / "state.json"
    good = state_file.read_text()
    state = json.loads(good)
    edit(state)
    state_file.write_text(json.dumps(state))
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert f"{state_file}: {message}; the checkpoint is damaged" in one_line_error(
        capsys, [*argv, "--resume"]
    )
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics  # refused before any training
    state_file.write_text(good)
    assert main([*argv, "--resume"]) == 0
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl", "resume")] == [2]


def test_a_valid_split_smaller_than_one_micro_batch_is_still_evaluated(shards, tmp_path):
    # Whole micro-batches only, it trained to the end with no valid loss at all.
    out = tmp_path / "run"
    run(settings(shards, out, max_steps=2, warmup_steps=1, eval_samples=2))
    [logged] = read_metrics(out / "metrics.jsonl", "valid")
    assert logged["tokens"] == 2 * 32


def test_eval_reads_every_sample_whatever_the_micro_batch(shards, tmp_path):
    """5 samples in micro-batches of 2 (the last one smaller) give the loss of one batch of 5."""
    out = tmp_path / "run"
    run(settings(shards, out, max_steps=2, warmup_steps=1, eval_every=0))
    source = settings(shards, out).data[0]
    [split], [whole] = (
        evaluate_checkpoint(out, [source], split="all", max_samples=5, micro_batch_size=size)
        for size in (2, 5)
    )
    assert split.tokens == whole.tokens == 5 * 32
    assert split.loss == pytest.approx(whole.loss, rel=1e-6)


def test_gradient_accumulation_matches_one_larger_micro_batch(shards, tmp_path):
    run(settings(shards, tmp_path / "accum", max_steps=6, micro_batch_size=2, eval_every=0))
    run(settings(shards, tmp_path / "whole", max_steps=6, micro_batch_size=8, eval_every=0))
    assert train_losses(tmp_path / "accum") == pytest.approx(train_losses(tmp_path / "whole"), rel=1e-5)


def test_eval_of_a_checkpoint_reproduces_the_training_valid_loss(shards, tmp_path):
    out = tmp_path / "run"
    run(settings(shards, out, max_steps=5, eval_samples=10_000))
    logged = read_metrics(out / "metrics.jsonl", "valid")[-1]
    [result] = evaluate_checkpoint(out, [settings(shards, out).data[0]], split="valid", micro_batch_size=4)
    assert result.tokens == logged["tokens"]
    assert result.loss == pytest.approx(logged["loss"], rel=1e-6)
    [whole] = evaluate_checkpoint(out, settings(shards, out).data, split="all", micro_batch_size=4)
    assert whole.tokens > 10 * result.tokens


def test_two_ddp_processes_match_one_process_with_accumulation(shards, tmp_path):
    args = [
        "--data", str(shards), "--preset", "tiny", "--seq-len", "32", "--micro-batch-size", "4",
        "--global-batch-size", "8", "--max-steps", "4", "--warmup-steps", "1", "--log-every", "1", "--lr", "3e-3",
        "--min-lr", "3e-4",
        "--eval-every", "0", "--valid-fraction", "0.05", "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + ["-m", "train.cli", "pretrain", *args, "--out", str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    run(settings(shards, tmp_path / "single", max_steps=4, warmup_steps=1, eval_every=0, deterministic=False))
    ddp_start = read_metrics(tmp_path / "ddp" / "metrics.jsonl", "start")[0]
    assert ddp_start["world_size"] == 2 and ddp_start["accum_steps"] == 1
    assert train_losses(tmp_path / "ddp") == pytest.approx(train_losses(tmp_path / "single"), rel=1e-5)
