"""Checkpoints made outside pretraining (finetuned, merged, imported), in the pretrain layout.

They are written by `train.checkpoint.save_checkpoint`, so they load wherever a pretrain checkpoint
loads (`train eval`, `load_weights`, `train finetune --base`, `train export`); the one addition is
`tokenizer_config.json` (chat template and special tokens) beside `tokenizer.json`. It is written after
the checkpoint directory is renamed into place, because `save_checkpoint` copies only `tokenizer.json`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from train.checkpoint import latest_checkpoint, save_checkpoint
from train.distributed import single_process
from train.finetune.chat_template import write_tokenizer_config
from train.user_files import check_output_dir


def check_new_run_dir(out: Path) -> None:
    """Refuse a run directory that already holds checkpoints (save_checkpoint would keep the old one), or
    that cannot be a directory."""
    check_output_dir(out, "--out")
    if latest_checkpoint(out / "checkpoints") is not None:
        raise ValueError(f"--out {out} already holds checkpoints; pick a new --out")


def finetuned_state(base_state: dict, base: Path, run_config: dict, consumed: int) -> dict:
    """`state.json` of a model finetuned from `base`: the base's model shape, tokenizer hash and
    pretraining trajectory (`train eval --split valid` reads its held-out split), and the run's config."""
    return {
        "consumed_samples": consumed,
        "trajectory": base_state["trajectory"],
        "config": run_config,
        "model": base_state["model"],
        "tokenizer_sha256": base_state["tokenizer_sha256"],
        "world_size": 1,
        "base": str(base.resolve()),
    }


def save_model_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    state: dict,
    tokenizer_json: Path,
    tokenizer_config: dict,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write `run_dir/checkpoints/step_N/` with `tokenizer_config.json`; return its path.

    Without an optimizer, `optimizer.pt` holds an empty AdamW state: the files of a pretrain checkpoint.
    """
    check_new_run_dir(run_dir)
    optimizer = optimizer or torch.optim.AdamW(model.parameters())
    path = save_checkpoint(
        run_dir / "checkpoints", step, model, optimizer, state, tokenizer_json, single_process("cpu"), keep=1
    )
    write_tokenizer_config(path, tokenizer_config)
    return path
