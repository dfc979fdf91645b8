"""Cross-entropy over the output logits, forward and backward, reading the bf16 logits (CUDA, Triton).

`F.cross_entropy(logits.float(), targets)` compiled took 0.78 ms forward + 0.64 ms backward of a 30 ms
124m step on an H200 at 16 × 1,024 tokens and a 32k vocabulary (bench/RESULTS.md); its forward, one
online-softmax reduction over the 1 GB of bf16 logits, ran at well under HBM speed. Here the forward reads
each row once, in blocks of columns, and keeps only its log-sum-exp; the backward reads the logits once
more and writes the gradient: softmax minus the one-hot target, times the row's incoming gradient. The
sums run in fp32, so the loss is F.cross_entropy's over fp32 logits up to summation order.

`linear_cross_entropy`, train.model's training loss, takes the output projection too. Its forward
kernel writes the logits' gradient (softmax minus the one-hot target, for a unit incoming gradient) over
the logits just after reading the row, so that the second read can come from L2; the backward is then
only the two matmuls, each row's incoming gradient scaling their small [N, d] operands. No second
[N, V] buffer is allocated for the gradient. At 16 × 1,024 tokens on an H200 the 124m step's peak memory
went from 8.3 to 7.3 GiB. Tokens/s stayed within run-to-run noise: 588,152 against 590,839 for the
separate matmul and loss, and 580,509 against 581,802 in a run before the block sizes below.

`token_losses` and `linear_token_losses` are `torch.library.triton_op`s with their backward registered
(as train/rope_kernels.py), so that torch.compile keeps them whole and autograd differentiates through
them. Targets equal to `IGNORE_INDEX` (F.cross_entropy's default, the finetuning masks) give a zero loss
and gradient; `cross_entropy` and `linear_cross_entropy` average over the others, as F.cross_entropy
does. train.model uses them for CUDA tensors when this module imports and `ENABLED` is true
(`cross_entropy` where no gradient is wanted: evaluation); the CPU path is F.cross_entropy.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

ENABLED = True
# train.model's training loss through linear_cross_entropy (off: the matmul, then cross_entropy).
FUSED_LINEAR = True
IGNORE_INDEX = -100
# (columns a forward program takes per pass over its row, warps) for the forward alone and for the forward
# that writes the gradient; the backward's programs each take one block of a row. The best of the grid of
# scripts/train_kernel_sweep.py on an H200 at 16,384 × 32,000, one-exp forward: 0.261 ms at (8192, 4) and
# 0.694 ms at (8192, 8), against 0.286 and 0.758 ms at (2048, 4), the tiles the benchmarks to 2026-12-04
# ran. The backward: 0.54 ms, flat across the grid (bench/RESULTS.md).
FORWARD_TILE, FORWARD_GRAD_TILE, BACKWARD_BLOCK = (8192, 4), (8192, 8), 4096


@triton.jit
def _forward_kernel(
    logits_ptr,
    targets_ptr,
    losses_ptr,
    lse_ptr,
    V,
    stride,
    IGNORE: tl.constexpr,
    BLOCK: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    WHOLE_ROW: tl.constexpr,
):
    """One row: online max and sum of exponentials over the vocabulary, then lse − logit[target]; with
    WRITE_GRAD, then the loss's gradient for a unit incoming gradient over the row's logits. WHOLE_ROW
    (V ≤ BLOCK): the row is read once and its exps kept for the gradient, no second read.

    The running max is one number for the row, not one per lane: a block's rescale is then one exp, and
    each logit costs one exp in this pass, not two. Same bytes, at 16,384 × 32,000 on an H200: the
    forward alone went from 0.448 to 0.286 ms, with the gradient from 0.794 to 0.758 ms (bench/RESULTS.md)."""
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * stride
    columns = tl.arange(0, BLOCK)
    if WHOLE_ROW:
        x = tl.load(base + columns, mask=columns < V, other=float("-inf")).to(tl.float32)
        row_max = tl.max(x, 0)
        # A row of -inf only: shift by 0 so that every exp is exp(-inf) = 0, not nan.
        exps = tl.exp(x - tl.where(row_max == float("-inf"), 0.0, row_max))
        total = tl.sum(exps, 0)
    else:
        row_max = float("-inf")
        total = 0.0
        for start in range(0, V, BLOCK):
            x = tl.load(base + start + columns, mask=start + columns < V, other=float("-inf")).to(tl.float32)
            new_max = tl.maximum(row_max, tl.max(x, 0))
            # While only -inf has been seen, shift by 0 so that every exp is exp(-inf) = 0, not nan.
            shift = tl.where(new_max == float("-inf"), 0.0, new_max)
            total = total * tl.exp(row_max - shift) + tl.sum(tl.exp(x - shift), 0)
            row_max = new_max
    lse = row_max + tl.log(total)
    target = tl.load(targets_ptr + row)
    ignored = target == IGNORE
    picked = tl.load(base + tl.where(ignored, 0, target)).to(tl.float32)
    tl.store(losses_ptr + row, tl.where(ignored, 0.0, lse - picked))
    tl.store(lse_ptr + row, lse)
    keep = tl.where(ignored, 0.0, 1.0)
    if WRITE_GRAD and WHOLE_ROW:  # softmax − onehot(target), zero if ignored
        grad = (exps / total - tl.where(columns == target, 1.0, 0.0)) * keep
        tl.store(base + columns, grad.to(logits_ptr.dtype.element_ty), mask=columns < V)
    elif WRITE_GRAD:  # the same, reading the row again: it was just read, it may be in L2
        for start in range(0, V, BLOCK):
            inside = start + columns < V
            x = tl.load(base + start + columns, mask=inside, other=0.0).to(tl.float32)
            grad = (tl.exp(x - lse) - tl.where(start + columns == target, 1.0, 0.0)) * keep
            tl.store(base + start + columns, grad.to(logits_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _backward_kernel(
    logits_ptr,
    targets_ptr,
    lse_ptr,
    dlosses_ptr,
    dlogits_ptr,
    V,
    stride,
    IGNORE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One block of one row: dlogits = dloss · (exp(logits − lse) − onehot(target)), zero if ignored."""
    row = tl.program_id(0).to(tl.int64)
    columns = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = columns < V
    target = tl.load(targets_ptr + row)
    dloss = tl.where(target == IGNORE, 0.0, tl.load(dlosses_ptr + row))
    x = tl.load(logits_ptr + row * stride + columns, mask=inside, other=0.0).to(tl.float32)
    grad = tl.exp(x - tl.load(lse_ptr + row)) - tl.where(columns == target, 1.0, 0.0)
    out = dlogits_ptr + row * V + columns
    tl.store(out, (grad * dloss).to(out.dtype.element_ty), mask=inside)


@triton_op("webcrawl_lm::token_losses", mutates_args={})
def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [N, V] (rows contiguous), targets [N] int64 → (losses [N] fp32, log-sum-exp [N] fp32)."""
    rows, vocab = logits.shape
    losses = logits.new_empty(rows, dtype=torch.float32)
    lse = torch.empty_like(losses)
    wrap_triton(_forward_kernel)[(rows,)](
        logits, targets, losses, lse, vocab, logits.stride(0),
        IGNORE=IGNORE_INDEX, BLOCK=FORWARD_TILE[0], WRITE_GRAD=False, WHOLE_ROW=vocab <= FORWARD_TILE[0],
        num_warps=FORWARD_TILE[1],
    )  # fmt: skip
    return losses, lse


@triton_op("webcrawl_lm::token_losses_backward", mutates_args={})
def token_losses_backward(
    logits: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, dlosses: torch.Tensor
) -> torch.Tensor:
    rows, vocab = logits.shape
    dlogits = logits.new_empty(rows, vocab)
    wrap_triton(_backward_kernel)[(rows, triton.cdiv(vocab, BACKWARD_BLOCK))](
        logits, targets, lse, dlosses.contiguous(), dlogits, vocab, logits.stride(0),
        IGNORE=IGNORE_INDEX, BLOCK=BACKWARD_BLOCK, num_warps=8,
    )  # fmt: skip
    return dlogits


def _setup_context(ctx, inputs, output):
    logits, targets = inputs
    ctx.save_for_backward(logits, targets, output[1])


def _backward(ctx, dlosses, _dlse):
    logits, targets, lse = ctx.saved_tensors
    return token_losses_backward(logits, targets, lse, dlosses), None


token_losses.register_autograd(_backward, setup_context=_setup_context)


@triton_op("webcrawl_lm::linear_token_losses", mutates_args={})
def linear_token_losses(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, d] and weight [V, d] of one dtype, targets [N] int64 → (losses [N] fp32 of the logits
    x·weightᵀ, the losses' gradient w.r.t. those logits for unit incoming gradients [N, V] in x's dtype).
    The gradient is written over the logits' own buffer."""
    grad = x @ weight.t()
    rows, vocab = grad.shape
    losses = grad.new_empty(rows, dtype=torch.float32)
    lse = torch.empty_like(losses)  # scratch: the gradient already holds what a backward would need
    wrap_triton(_forward_kernel)[(rows,)](
        grad, targets, losses, lse, vocab, grad.stride(0),
        IGNORE=IGNORE_INDEX, BLOCK=FORWARD_GRAD_TILE[0], WRITE_GRAD=True,
        WHOLE_ROW=vocab <= FORWARD_GRAD_TILE[0], num_warps=FORWARD_GRAD_TILE[1],
    )  # fmt: skip
    return losses, grad


def _linear_setup_context(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight, output[1])
    # The gradient output is for the backward only: no incoming gradient for it, and none materialised
    # (autograd would otherwise pass a zero tensor the size of the logits).
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _linear_backward(ctx, dlosses, _dgrad):
    # dlogits = diag(dlosses) · grad, so each row's incoming gradient scales the small [N, d] operands
    # and results rather than the [N, V] gradient: no pass over it but the two matmuls'.
    x, weight, grad = ctx.saved_tensors
    scale = dlosses.unsqueeze(1)
    dx = ((grad @ weight).float() * scale).to(x.dtype)
    dweight = grad.t() @ (x.float() * scale).to(x.dtype)
    return dx, dweight, None


linear_token_losses.register_autograd(_linear_backward, setup_context=_linear_setup_context)


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """cross_entropy(x @ weight.T, targets) for CUDA x [N, d] and weight [V, d] of one dtype, with the
    logits' gradient computed in the forward pass, in place of the logits (see the module's docs)."""
    losses, _ = linear_token_losses(x.contiguous(), weight.contiguous(), targets)
    return _mean_over_targets(losses, targets)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy(logits.float(), targets) (mean over targets not IGNORE_INDEX) for CUDA logits
    [N, V] of any float dtype."""
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    losses, _ = token_losses(logits, targets)
    return _mean_over_targets(losses, targets)


def _mean_over_targets(losses: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean over the targets that are not IGNORE_INDEX (nan if all are), as F.cross_entropy's."""
    return losses.sum() / (targets != IGNORE_INDEX).sum()
