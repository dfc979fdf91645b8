"""DPO: on a small preference set the chosen-over-rejected margin grows and the frozen reference does not
move; a run logs rewards, margins and accuracy."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.train.finetune_fixtures import one_thread, pretrain_base, write_jsonl  # noqa: F401
from train.checkpoint import load_weights, read_state
from train.cli import main
from train.finetune.chat_template import ChatFormat
from train.finetune.data import PreferenceLine, read_preferences
from train.finetune.dpo import DPOObjective, build_pairs
from train.metrics import read_metrics
from train.model import ModelConfig, Transformer
from train.optim import build_optimizer

PREFERENCES = [
    {"prompt": "What does the cat see?", "chosen": "The red house.", "rejected": "A long river."},
    {"prompt": "Who paints the door?", "chosen": "My sister.", "rejected": "The old man."},
    {"prompt": "What does the dog like?", "chosen": "The quiet town.", "rejected": "The green hill."},
    {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Who sees a bird?"},
        ],
        "chosen": "The teacher.",
        "rejected": "A small bird.",
    },
]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def base(tmp_path_factory, shards):
    return pretrain_base(shards, tmp_path_factory.mktemp("base") / "run")


def mean_margin(objective: DPOObjective, model: Transformer, pairs) -> float:
    with torch.no_grad():
        _, stats = objective.loss_sum(model, pairs, CPU)
    return stats["reward_margin"].item() / len(pairs)


def test_margin_grows_and_the_reference_stays_frozen(base):
    chat = ChatFormat.from_checkpoint(base)
    pairs, truncated = build_pairs(chat, [PreferenceLine(**p) for p in PREFERENCES], seq_len=128)
    assert truncated == 0
    policy = Transformer(ModelConfig(**read_state(base)["model"]))
    load_weights(base, policy)
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    snapshot = {k: v.clone() for k, v in reference.state_dict().items()}
    objective = DPOObjective(reference, beta=0.1, pad_id=chat.pad_id)
    optimizer = build_optimizer(policy, 1e-3, 0.0, (0.9, 0.95), fused=False)

    margins = [mean_margin(objective, policy, pairs)]
    assert margins[0] == 0.0  # the policy starts as the reference
    for _ in range(3):
        for _ in range(5):
            loss, _ = objective.loss_sum(policy, pairs, CPU)
            (loss / len(pairs)).backward()
            optimizer.step()
            optimizer.zero_grad()
        margins.append(mean_margin(objective, policy, pairs))
    assert margins == sorted(margins) and margins[-1] > 0.5
    assert all(torch.equal(v, snapshot[k]) for k, v in reference.state_dict().items())
    assert all(p.grad is None for p in reference.parameters())


def test_dpo_run_logs_rewards_margin_and_accuracy(base, tmp_path):
    data = write_jsonl(tmp_path / "prefs.jsonl", PREFERENCES)
    assert [p.chosen for p in read_preferences(data)] == [p["chosen"] for p in PREFERENCES]
    out = tmp_path / "dpo"
    args = f"finetune dpo --base {base} --data {data} --valid-data {data} --out {out} --beta 0.1 --lr 1e-2"
    args += " --epochs 20 --batch-size 2 --lora-rank 8 --lora-alpha 16 --warmup-steps 2 --log-every 5"
    args += " --eval-every 10 --no-progress"
    assert main(args.split()) == 0
    train = read_metrics(out / "metrics.jsonl", "train")
    valid = read_metrics(out / "metrics.jsonl", "valid")
    for record in train + valid:
        assert {"loss", "reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"} <= set(record)
    assert [r["step"] for r in valid] == [0, 10, 20, 30, 40]
    assert valid[0]["reward_margin"] == 0.0 and valid[0]["loss"] == pytest.approx(math.log(2))
    margins = [r["reward_margin"] for r in valid]
    assert margins == sorted(margins) and margins[-1] > 0.5
    assert valid[-1]["reward_accuracy"] == 1.0 and valid[-1]["loss"] < 0.5
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
