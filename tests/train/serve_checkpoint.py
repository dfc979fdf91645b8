"""A checkpoint for the serving tests: a tiny model with random weights, saved by `train.checkpoint`, and
its reference greedy decoding by the model's own forward pass (no KV cache)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from train.checkpoint import save_checkpoint
from train.distributed import single_process
from train.model import Transformer, preset_config
from train.optim import build_optimizer


def write_checkpoint(root: Path, tokenizer_file: Path, max_seq_len: int = 1024, seed: int = 0) -> Path:
    """`root/checkpoints/step_0000001`, as `train pretrain` writes it. A large init_std makes the random
    model's next-token distributions peaked, so that greedy choices are far from ties."""
    torch.manual_seed(seed)
    vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
    model = Transformer(preset_config("tiny", vocab_size=vocab, max_seq_len=max_seq_len, init_std=0.2))
    optimizer = build_optimizer(model, 1e-3, 0.1, (0.9, 0.95), fused=False)
    state = {"consumed_samples": 0, "model": model.cfg.model_dump()}
    return save_checkpoint(
        root / "checkpoints", 1, model, optimizer, state, tokenizer_file, single_process("cpu"), keep=1
    )


@torch.no_grad()
def greedy_reference(
    model: Transformer, prompt: list[int], max_tokens: int, eos_id: int | None = None
) -> list[int]:
    """Greedy tokens from full forward passes of the model, ending at `eos_id` (included) or max_tokens."""
    ids = list(prompt)
    for _ in range(max_tokens):
        token = int(model(torch.tensor([ids]))[0, -1, : model.cfg.vocab_size].argmax())
        ids.append(token)
        if token == eos_id:
            break
    return ids[len(prompt) :]
