"""Shared by the finetuning and export tests: a tiny base checkpoint from a few steps of `train pretrain`
(so they work on a real pretrain checkpoint), a small instruction set, JSONL files, one CPU thread."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from train.checkpoint import latest_checkpoint
from train.config import PretrainConfig
from train.pretrain import pretrain

INSTRUCTIONS = [
    {"prompt": "What does the cat see?", "response": "The cat sees the red house."},
    {"prompt": "Who paints the open door?", "response": "My sister paints an open door."},
    {"prompt": "What does the dog like?", "response": "A dog likes the quiet town."},
    {
        "messages": [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Where is the bird?"},
            {"role": "assistant", "content": "A small bird finds the green hill."},
        ]
    },
    {"prompt": "Who follows the teacher?", "response": "The old man follows the teacher."},
]


def read_conversations_of(records: list[dict]) -> list[list[dict]]:
    """The conversations the JSONL reader must make of INSTRUCTIONS."""
    return [
        r["messages"]
        if "messages" in r
        else [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        for r in records
    ]


def pretrain_base(shards: Path, out: Path, **model) -> Path:
    """The checkpoint of 4 steps of the tiny preset on `shards` (max_seq_len 128; `model` overrides)."""
    cfg = PretrainConfig(
        data=[str(shards)],
        out=out,
        preset="tiny",
        model=model,
        seq_len=128,
        micro_batch_size=4,
        global_batch_size=4,
        max_steps=4,
        warmup_steps=1,
        valid_fraction=0.05,
        eval_samples=4,
        log_every=1,
        progress=False,
    )
    pretrain(cfg, console=Console(file=io.StringIO()))
    return latest_checkpoint(out / "checkpoints")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread (import this fixture into a test module to use it): a busy 2-core CI machine
    runs tiny models many times slower with threads that wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
