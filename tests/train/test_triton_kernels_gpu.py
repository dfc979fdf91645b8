"""train/swiglu_kernels.py and train/cross_entropy_kernels.py (the loss alone, and with the output
matmul) against the PyTorch code they replace on CUDA, and the compiled model with train.model's Triton
kernels against the model without them.

Skipped without a GPU (CI has none); run on one with `pytest --noconftest tests/train/test_triton_kernels_gpu.py`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from train.model import Transformer, preset_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
swiglu_kernels = pytest.importorskip("train.swiglu_kernels", reason="needs Triton")
cross_entropy_kernels = pytest.importorskip("train.cross_entropy_kernels", reason="needs Triton")
rope_kernels = pytest.importorskip("train.rope_kernels", reason="needs Triton")

TOLERANCE = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2}}


@pytest.mark.parametrize("rows, hidden", [(16384, 2048), (77, 2816), (3, 100)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_matches_the_pytorch_code_forward_and_backward(rows, hidden, dtype):
    torch.manual_seed(rows)
    gate_up = torch.randn(rows, 2 * hidden, device="cuda", dtype=dtype) * 3
    ours_in, ref_in = gate_up.clone().requires_grad_(), gate_up.float().requires_grad_()
    ours = swiglu_kernels.swiglu(ours_in)
    gate, up = ref_in.chunk(2, dim=-1)
    ref = F.silu(gate) * up
    grad = torch.randn(rows, hidden, device="cuda", dtype=dtype)
    ours.backward(grad)
    ref.backward(grad.float())
    assert ours.dtype == dtype and ours_in.grad.dtype == dtype
    torch.testing.assert_close(ours.float(), ref, **TOLERANCE[dtype])
    torch.testing.assert_close(ours_in.grad.float(), ref_in.grad, **TOLERANCE[dtype])


@pytest.mark.parametrize("rows, vocab", [(4096, 32000), (33, 50304), (5, 1000)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cross_entropy_matches_torch_over_fp32_logits(rows, vocab, dtype):
    torch.manual_seed(rows)
    logits = (torch.randn(rows, vocab, device="cuda") * 4).to(dtype)
    targets = torch.randint(0, vocab, (rows,), device="cuda")
    targets[::3] = cross_entropy_kernels.IGNORE_INDEX  # the finetuning masks
    ours_in, ref_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = cross_entropy_kernels.cross_entropy(ours_in, targets)
    ref = F.cross_entropy(ref_in.float(), targets)
    (ours * 3).backward()
    (ref * 3).backward()
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    assert ours_in.grad.dtype == dtype
    torch.testing.assert_close(ours_in.grad.float(), ref_in.grad.float(), **TOLERANCE[dtype])
    assert not ours_in.grad[::3].any()  # ignored rows get no gradient


def test_cross_entropy_of_all_ignored_targets_is_nan_as_in_torch():
    logits = torch.randn(4, 256, device="cuda")
    targets = torch.full((4,), cross_entropy_kernels.IGNORE_INDEX, device="cuda")
    assert cross_entropy_kernels.cross_entropy(logits, targets).isnan()
    assert F.cross_entropy(logits, targets).isnan()


@pytest.mark.parametrize("rows, d, vocab", [(4096, 768, 32000), (33, 64, 50304), (5, 16, 1000)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_cross_entropy_matches_torch_over_fp32_logits(rows, d, vocab, dtype):
    torch.manual_seed(rows)
    x = torch.randn(rows, d, device="cuda").to(dtype)
    weight = (torch.randn(vocab, d, device="cuda") / d**0.5 * 4).to(dtype)
    targets = torch.randint(0, vocab, (rows,), device="cuda")
    targets[::3] = cross_entropy_kernels.IGNORE_INDEX
    ours_x, ours_w = x.clone().requires_grad_(), weight.clone().requires_grad_()
    ref_x, ref_w = x.clone().requires_grad_(), weight.clone().requires_grad_()
    ours = cross_entropy_kernels.linear_cross_entropy(ours_x, ours_w, targets)
    ref = F.cross_entropy(F.linear(ref_x, ref_w).float(), targets)
    (ours * 3).backward()
    (ref * 3).backward()
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=1e-4)
    assert ours_x.grad.dtype == dtype and ours_w.grad.dtype == dtype
    for mine, theirs in ((ours_x.grad, ref_x.grad), (ours_w.grad, ref_w.grad)):
        assert ((mine.float() - theirs.float()).norm() / theirs.float().norm()).item() < 1e-2
    assert not ours_x.grad[::3].any()  # ignored rows get no gradient


def test_linear_cross_entropy_holds_one_logits_sized_buffer_where_the_separate_loss_holds_two():
    rows, d, vocab = 8192, 768, 32000
    logits_bytes = rows * vocab * 2
    x = torch.randn(rows, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(vocab, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,), device="cuda")
    peaks = []
    for loss_of in (
        lambda: cross_entropy_kernels.linear_cross_entropy(x, weight, targets),
        lambda: cross_entropy_kernels.cross_entropy(F.linear(x, weight), targets),
    ):
        x.grad = weight.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        loss_of().backward()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - start)
    fused, separate = peaks
    assert fused < 1.2 * logits_bytes < 1.8 * logits_bytes < separate, peaks


# The switches of each kernel run, each as train.model uses it.
KERNEL_RUNS = {
    "fused loss": {},
    "separate loss": {(cross_entropy_kernels, "FUSED_LINEAR"): False},
    "one qkv matmul": {(rope_kernels, "SEPARATE_V"): False},
}


@pytest.mark.parametrize("run", KERNEL_RUNS)
def test_compiled_model_trains_the_same_with_the_kernels_as_without(run, monkeypatch):
    """The tiny model, compiled, under bf16 autocast: loss and gradients of one step agree."""
    cfg = preset_config("tiny", vocab_size=512)
    torch.manual_seed(0)
    idx = torch.randint(0, 512, (4, 129), device="cuda")
    for (module, name), value in KERNEL_RUNS[run].items():
        monkeypatch.setattr(module, name, value)
    results = []
    for enabled in (True, False):
        for module in (rope_kernels, swiglu_kernels, cross_entropy_kernels):
            monkeypatch.setattr(module, "ENABLED", enabled)
        torch._dynamo.reset()
        torch.manual_seed(0)
        model = Transformer(cfg).cuda()
        compiled = torch.compile(model)
        with torch.autocast("cuda", torch.bfloat16):
            loss = compiled(idx[:, :-1], idx[:, 1:])
        loss.backward()
        results.append((loss.detach(), [p.grad for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, atol=1e-3, rtol=1e-3)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert ((a - b).norm() / b.norm()).item() < 2e-2
