"""AdamW's update as one Triton launch per parameter group, with the gradient clip's scale applied as each
gradient is read (CUDA, Triton).

On an H200 a 124m step spent 0.90 ms in torch's fused AdamW (~3.1 GB of parameters, gradients and moments
at ~3.4 TB/s, 81% of a copy's speed) and 0.40 ms in `clip_grad_norm_`: a pass that reads the gradients
for their norm and one that scales them in place (bench/RESULTS.md). Torch's fused AdamW can take that
scale (`grad_scale`), but writes the scaled gradients back. Here the norm still comes from torch
(`get_total_norm`), and the update reads each gradient once, multiplies it by min(1, max_norm / norm)
from GPU memory, so the host never waits, and writes only the parameter and the two moments.

`TritonAdamW` is a `torch.optim.AdamW` with `fused=True`: the same hyperparameters and the same state
(`step`, `exp_avg`, `exp_avg_sq`, each parameter's step count a tensor on its device), so checkpoints
load in either. Its `clip_and_step` (train.optim.clip_and_step's) takes the kernel when every parameter
with a gradient is a plain fp32 CUDA tensor of one device with a contiguous gradient; otherwise (FSDP's
DTensors, say) it is `clip_grad_norm_` and torch's fused step, as `step` always is. The math is torch's fused AdamW's, in fp32, per
parameter: its step count plus one, decoupled weight decay, the moments, the bias-corrected update, the
bias corrections from that parameter's own count (read on the GPU). train.optim builds it for CUDA runs
when this module imports and `ENABLED` is true.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

# Off by default: not yet timed on a GPU against torch's fused AdamW (bench variant ours-triton-adamw).
ENABLED = False
# Elements a program updates, and its warps.
BLOCK, WARPS = 4096, 8


@triton.jit
def _adamw_kernel(
    pointers_ptr,
    numels_ptr,
    chunks_ptr,
    scale_ptr,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    BLOCK: tl.constexpr,
):
    """One block of one tensor. The chunk table gives (tensor, first element); the tensor's row of the
    pointer table, the addresses of its parameter, gradient, exp_avg, exp_avg_sq and step count (already
    counting this step)."""
    chunk = tl.program_id(0)
    tensor = tl.load(chunks_ptr + 2 * chunk)
    offsets = tl.load(chunks_ptr + 2 * chunk + 1) + tl.arange(0, BLOCK)
    inside = offsets < tl.load(numels_ptr + tensor)
    row = pointers_ptr + 5 * tensor
    param = tl.load(row).to(tl.pointer_type(tl.float32))
    grad = tl.load(row + 1).to(tl.pointer_type(tl.float32))
    exp_avg = tl.load(row + 2).to(tl.pointer_type(tl.float32))
    exp_avg_sq = tl.load(row + 3).to(tl.pointer_type(tl.float32))
    step = tl.load(tl.load(row + 4).to(tl.pointer_type(tl.float32)))
    step_size = lr / (1 - tl.exp(step * tl.log(beta1)))
    bias2_sqrt = tl.sqrt(1 - tl.exp(step * tl.log(beta2)))
    g = tl.load(grad + offsets, mask=inside) * tl.load(scale_ptr)
    m = beta1 * tl.load(exp_avg + offsets, mask=inside) + (1 - beta1) * g
    v = beta2 * tl.load(exp_avg_sq + offsets, mask=inside) + (1 - beta2) * g * g
    p = tl.load(param + offsets, mask=inside) * (1 - lr * weight_decay)
    p -= step_size * m / (tl.sqrt(v) / bias2_sqrt + eps)
    tl.store(exp_avg + offsets, m, mask=inside)
    tl.store(exp_avg_sq + offsets, v, mask=inside)
    tl.store(param + offsets, p, mask=inside)


@functools.lru_cache(maxsize=8)
def _chunk_tables(numels: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensors' sizes and the (tensor, first element) of every block: fixed for a model's parameters."""
    chunks = [(i, start) for i, n in enumerate(numels) for start in range(0, n, BLOCK)]
    return (
        torch.tensor(numels, dtype=torch.int64, device=device),
        torch.tensor(chunks, dtype=torch.int64, device=device).reshape(-1),
    )


def adamw_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    scale: torch.Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """One AdamW step, in place, over contiguous fp32 tensors of one device. `steps` are the parameters'
    step counts (one-element fp32 tensors) already counting this step; `scale` (one element, fp32)
    multiplies every gradient."""
    device = params[0].device
    numels, chunks = _chunk_tables(tuple(p.numel() for p in params), device)
    pointers = torch.tensor(
        [t.data_ptr() for row in zip(params, grads, exp_avgs, exp_avg_sqs, steps, strict=True) for t in row],
        dtype=torch.int64,
    )
    if device.type == "cuda":  # from pinned memory, no sync: the host allocator keeps it until the copy ends
        pointers = pointers.pin_memory().to(device, non_blocking=True)
    _adamw_kernel[(chunks.numel() // 2,)](
        pointers, numels, chunks, scale, lr, beta1, beta2, eps, weight_decay, BLOCK=BLOCK, num_warps=WARPS
    )


class TritonAdamW(torch.optim.AdamW):
    """torch.optim.AdamW(fused=True) with `clip_and_step`, which runs `adamw_update` where it can (see the
    module's docs); `step` is torch's fused AdamW step."""

    def __init__(self, params, **kwargs) -> None:
        super().__init__(params, fused=True, **kwargs)
        if self.defaults["amsgrad"] or self.defaults["maximize"]:
            raise ValueError("TritonAdamW: amsgrad and maximize are not supported; use torch.optim.AdamW")

    def _with_grads(self) -> list[list[torch.Tensor]] | None:
        """Each group's parameters that have a gradient, if the kernel takes them all; else None."""
        groups = [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]
        params = [p for group in groups for p in group]
        if not params:
            return None
        device = params[0].device
        takes = all(
            type(p.data) is torch.Tensor and p.device == device and p.dtype == torch.float32
            and p.is_contiguous() and p.grad.dtype == torch.float32 and p.grad.is_contiguous()
            for p in params
        )  # fmt: skip
        return groups if takes and device.type == "cuda" else None

    @torch.no_grad()
    def clip_and_step(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Clip the gradients of `params` (this optimizer's) to a total norm of max_norm (math.inf: no
        clip), then step; returns the total norm before clipping, as clip_grad_norm_ does."""
        groups = self._with_grads()
        if groups is None:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            super().step()
            return norm
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self._kernel_step(groups, (max_norm / (norm + 1e-6)).clamp(max=1.0))  # clip_grad_norm_'s coefficient
        return norm

    def _kernel_step(self, groups: list[list[torch.Tensor]], scale: torch.Tensor) -> None:
        for group, params in zip(self.param_groups, groups, strict=True):
            if not params:
                continue
            for p in params:
                if p not in self.state:  # as torch's fused AdamW initialises it
                    self.state[p] = {
                        "step": torch.zeros((), dtype=torch.float32, device=p.device),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
            states = [self.state[p] for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1.0)
            beta1, beta2 = group["betas"]
            adamw_update(
                params, [p.grad for p in params], [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states], steps, scale.reshape(1).float(),
                lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                weight_decay=group["weight_decay"],
            )  # fmt: skip
