"""train/adamw_kernels.py: TritonAdamW's clipped step against clip_grad_norm_ + torch's fused AdamW, its
state against torch's, and its fallback to them.

Skipped without a GPU (CI has none); run on one with `pytest --noconftest tests/train/test_adamw_kernels_gpu.py`.
"""

from __future__ import annotations

import copy

import pytest
import torch

import train.optim
from train.model import Transformer, preset_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
adamw_kernels = pytest.importorskip("train.adamw_kernels", reason="needs Triton")

SHAPES = [(768, 768), (32000, 64), (4097,), (3,)]


def pair(seed: int):
    torch.manual_seed(seed)
    ours = [torch.nn.Parameter(torch.randn(shape, device="cuda")) for shape in SHAPES]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]

    def groups(params):
        return [{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "weight_decay": 0.0}]

    hyper = {"lr": 3e-3, "betas": (0.9, 0.95), "eps": 1e-8}
    return (
        ours,
        ref,
        adamw_kernels.TritonAdamW(groups(ours), **hyper),
        torch.optim.AdamW(groups(ref), fused=True, **hyper),
    )


def set_grads(ours, ref, scale: float, skip: int | None = None) -> None:
    for i, (p, r) in enumerate(zip(ours, ref, strict=True)):
        grad = None if i == skip else torch.randn_like(p) * scale
        p.grad, r.grad = grad, None if grad is None else grad.clone()


@pytest.mark.parametrize("max_norm", [1.0, float("inf")])
def test_clipped_step_matches_clip_grad_norm_and_torch_fused_adamw(max_norm):
    ours, ref, opt, torch_opt = pair(0)
    for step in range(5):
        # Large gradients, so that the clip bites; one parameter without a gradient in step 2.
        set_grads(ours, ref, scale=10.0, skip=1 if step == 2 else None)
        for group in opt.param_groups + torch_opt.param_groups:
            group["lr"] = 3e-3 * (step + 1)
        norm = train.optim.clip_and_step(opt, ours, max_norm)
        want = torch.nn.utils.clip_grad_norm_(ref, max_norm)
        torch_opt.step()
        torch.testing.assert_close(norm, want)
        for p, r in zip(ours, ref, strict=True):
            torch.testing.assert_close(p, r, atol=1e-6, rtol=1e-5)
    for p, r in zip(ours, ref, strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][key], torch_opt.state[r][key], atol=1e-6, rtol=1e-5)
    assert opt.state[ours[1]]["step"].item() == 4.0  # skipped once, as torch's count


def test_state_dict_loads_into_torch_fused_adamw_and_back():
    ours, ref, opt, torch_opt = pair(1)
    set_grads(ours, ref, scale=1.0)
    opt.clip_and_step(ours, float("inf"))
    torch_opt.load_state_dict(
        copy.deepcopy(opt.state_dict())
    )  # load_state_dict keeps the tensors it is given
    with torch.no_grad():
        for p, r in zip(ours, ref, strict=True):
            r.copy_(p)
    set_grads(ours, ref, scale=1.0)
    opt.clip_and_step(ours, float("inf"))
    torch_opt.step()
    for p, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, r, atol=1e-6, rtol=1e-5)
    again = adamw_kernels.TritonAdamW([{"params": ours[:2]}, {"params": ours[2:]}], lr=3e-3)
    again.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    assert again.state[ours[0]]["step"].item() == 2.0


def test_falls_back_to_torch_fused_adamw_for_a_bf16_parameter():
    torch.manual_seed(2)
    ours = [
        torch.nn.Parameter(torch.randn(64, 64, device="cuda")),
        torch.nn.Parameter(torch.randn(64, device="cuda").bfloat16()),
    ]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = adamw_kernels.TritonAdamW(ours, lr=1e-2)
    torch_opt = torch.optim.AdamW(ref, lr=1e-2, fused=True)
    set_grads(ours, ref, scale=10.0)
    assert opt._with_grads() is None
    norm = opt.clip_and_step(ours, 1.0)
    torch.testing.assert_close(norm, torch.nn.utils.clip_grad_norm_(ref, 1.0))
    torch_opt.step()
    for p, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, r, atol=0, rtol=0)  # the same clip and step: torch's


def test_build_optimizer_gives_it_when_switched_on_and_a_model_trains(monkeypatch):
    monkeypatch.setattr(adamw_kernels, "ENABLED", True)
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny", 512)).cuda()
    optimizer = train.optim.build_optimizer(model, 1e-3, 0.1, (0.9, 0.95), fused=True)
    assert isinstance(optimizer, adamw_kernels.TritonAdamW)
    batch = torch.randint(0, 512, (4, 65), device="cuda")
    losses = []
    for _ in range(20):
        loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        train.optim.clip_and_step(optimizer, model.parameters(), 1.0)
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
