"""Loss and perplexity of a model on shard samples: validation during training, and `train eval`.

Every sample predicts seq_len tokens and consecutive samples share one token, so over one epoch of
samples every token after the first is a target exactly once; the loss is the mean over those targets.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from train.checkpoint import latest_checkpoint, load_weights, read_state, state_model_config
from train.data import DataSource, Documents, SampleDataset, load_batch, open_sources, split_documents
from train.distributed import DistEnv, all_reduce, single_process
from train.model import Transformer


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    dataset,
    samples: int,
    micro_batch_size: int,
    vocab_size: int,
    env: DistEnv,
    autocast: contextlib.AbstractContextManager,
) -> tuple[float, int] | None:
    """Mean loss over the first `samples` samples of `dataset` (rounded down to a multiple of the ranks,
    which split them) and the number of target tokens; None when there are fewer samples than ranks.

    Each rank reads its share in micro-batches, the last one smaller where they do not divide it: every
    rank then runs the same batch shapes, in lockstep, as DDP and FSDP want of a forward.
    """
    per_rank = samples // env.world_size
    if per_rank == 0:
        return None
    positions = np.arange(env.rank * per_rank, (env.rank + 1) * per_rank)
    totals = torch.zeros(2, dtype=torch.float64, device=env.device)  # loss × tokens, tokens
    was_training = model.training
    model.eval()
    for start in range(0, per_rank, micro_batch_size):
        chunk = positions[start : start + micro_batch_size]
        batch = load_batch(dataset, chunk, vocab_size).to(env.device)
        with autocast:
            loss = model(batch[:, :-1], batch[:, 1:])
        targets = batch[:, 1:].numel()
        totals[0] += loss.double() * targets
        totals[1] += targets
    model.train(was_training)
    all_reduce(totals, env)
    return (totals[0] / totals[1]).item(), int(totals[1].item())


@dataclass(frozen=True)
class EvalResult:
    data: str
    split: str
    samples: int
    tokens: int
    loss: float

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint directory as given, or the newest one under a run directory's `checkpoints/`."""
    if (path / "state.json").is_file():
        return path
    latest = latest_checkpoint(path / "checkpoints")
    if latest is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint nor a run directory with checkpoints/")
    return latest


def evaluate_checkpoint(
    checkpoint: Path,
    sources: list[DataSource],
    split: str = "all",
    max_samples: int | None = None,
    micro_batch_size: int = 8,
    device: str = "auto",
) -> list[EvalResult]:
    """Perplexity of a checkpoint on each shard directory: all its documents in order (`all`), or the
    documents the checkpoint's run held out for validation (`valid`)."""
    env = single_process(device)
    checkpoint = resolve_checkpoint(checkpoint)
    run_keys = ("trajectory.seq_len", "trajectory.seed", "trajectory.valid_fraction")
    state = read_state(checkpoint, "model", "tokenizer_sha256", *run_keys)
    run = state["trajectory"]
    try:  # before the weights: data errors first
        shard_sets = open_sources(sources, state["tokenizer_sha256"])
    except (ValueError, FileNotFoundError) as err:  # no such directory, a bad shard, another tokenizer
        raise ValueError(f"--data: {err}") from None
    model_cfg = state_model_config(state, checkpoint)
    model = Transformer(model_cfg)
    load_weights(checkpoint, model)
    model.to(env.device)
    cuda = env.device.type == "cuda"
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda else contextlib.nullcontext()
    results = []
    for source, shards in zip(sources, shard_sets, strict=True):
        documents = Documents(shards)
        if split == "valid":
            _, doc_ids = split_documents(len(documents), run["valid_fraction"], run["seed"])
        else:
            doc_ids = np.arange(len(documents))
        dataset = SampleDataset(documents, doc_ids, run["seq_len"], run["seed"], shuffle=False)
        samples = (
            dataset.samples_per_epoch if max_samples is None else min(max_samples, dataset.samples_per_epoch)
        )
        measured = evaluate_loss(
            model, dataset, samples, micro_batch_size, model_cfg.vocab_size, env, autocast
        )
        if measured is None:
            raise ValueError(f"{source.path}: no sample of {run['seq_len']} tokens in its {split} documents")
        loss, tokens = measured
        results.append(EvalResult(str(source.path), split, tokens // run["seq_len"], tokens, loss))
    return results
