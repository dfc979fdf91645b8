"""AdamW with weight decay on matrices only, the gradient clip and step, the warmup + cosine
learning-rate schedule, and the check that the loss has not diverged."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], fused: bool
) -> torch.optim.AdamW:
    """AdamW that decays every matrix (embeddings included) but no norm gain, as in GPT-2 and Llama;
    fused: torch's fused (CUDA) implementation."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def clip_and_step(
    optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor], max_norm: float
) -> torch.Tensor:
    """Clip the gradients of `params`, the optimizer's, to a total norm of max_norm (math.inf: no clip) and
    step; returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    return norm


class TrainingDiverged(ValueError):
    """The loss became inf or nan: the learning rate is too high for this model and data.

    A ValueError, so that the `train` CLI ends with its one-line error, as for any setting that cannot work.
    """


def check_not_diverged(loss: float, step: int) -> None:
    """Raise TrainingDiverged, naming --lr, when the logged loss of `step` is not finite."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss} at step {step}: training diverged; lower --lr")


def lr_at(step: int, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Linear warmup from lr/warmup_steps to lr, then cosine decay to min_lr at max_steps.

    A pure function of the step: a resumed run gets the same rate without any scheduler state.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if max_steps <= warmup_steps:
        return lr
    progress = min(1.0, (step - warmup_steps) / (max_steps - warmup_steps))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
