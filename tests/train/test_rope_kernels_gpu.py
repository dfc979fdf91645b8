"""train/rope_kernels.py: the Triton RoPE + head split against the PyTorch code it replaces on CUDA.

Skipped without a GPU (CI has none); run on one with `pytest --noconftest tests/train/test_rope_kernels_gpu.py`.
"""

from __future__ import annotations

import pytest
import torch

from train.model import apply_rope, rope_tables

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
rope_kernels = pytest.importorskip("train.rope_kernels", reason="needs Triton")


def reference(projection, cos, sin, n_head, n_kv_head, with_v):
    batch, seq, width = projection.shape
    head_dim = width // (n_head + n_kv_head * (2 if with_v else 1))
    widths = [n_head * head_dim, n_kv_head * head_dim] + [n_kv_head * head_dim] * with_v
    q, k, *v = projection.split(widths, -1)
    q = q.view(batch, seq, n_head, head_dim).transpose(1, 2)
    k = k.view(batch, seq, n_kv_head, head_dim).transpose(1, 2)
    v = [t.view(batch, seq, n_kv_head, head_dim).transpose(1, 2) for t in v]
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), *v


@pytest.mark.parametrize(
    "batch, seq, n_head, n_kv_head, head_dim", [(2, 1024, 12, 12, 64), (3, 77, 8, 2, 128), (1, 5, 4, 1, 16)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("grad_layout", ["token-major", "head-major"])
@pytest.mark.parametrize("with_v", [True, False], ids=["rope_split", "rope_split_qk"])
def test_rope_split_matches_the_pytorch_code_forward_and_backward(
    batch, seq, n_head, n_kv_head, head_dim, dtype, grad_layout, with_v
):
    torch.manual_seed(seq)
    cos, sin = (t[:seq].cuda() for t in rope_tables(head_dim, 2048, 10000.0))
    width = (n_head + n_kv_head * (2 if with_v else 1)) * head_dim
    projection = torch.randn(batch, seq, width, device="cuda", dtype=dtype)
    ours_in, ref_in = projection.clone().requires_grad_(), projection.clone().requires_grad_()
    op = rope_kernels.rope_split if with_v else rope_kernels.rope_split_qk
    ours = op(ours_in, cos, sin, n_head, n_kv_head)
    ref = reference(ref_in, cos, sin, n_head, n_kv_head, with_v)
    # randn_like keeps the references' token-major strides; cuDNN's gradients may come in either layout.
    grads = [torch.randn_like(t) for t in ref]
    if grad_layout == "head-major":
        grads = [g.contiguous() for g in grads]
    torch.autograd.backward(ours, grads)
    torch.autograd.backward(ref, grads)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    assert len(ours) == len(ref)
    for got, want in zip(ours, ref, strict=True):
        # token-major in memory, so that the attention output needs no transpose copy
        assert got.shape == want.shape and got.transpose(1, 2).is_contiguous()
        torch.testing.assert_close(got, want, **tol)
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **tol)


def test_cudnn_attention_output_is_token_major_for_token_major_inputs():
    """The premise of rope_split's layout: the attention output is already [B, T, H·hd] in memory."""
    from train.model import attention_kernels

    qkv = torch.randn(2, 256, 3 * 4 * 64, device="cuda", dtype=torch.bfloat16)
    cos, sin = (t[:256].cuda() for t in rope_tables(64, 256, 10000.0))
    q, k, v = rope_kernels.rope_split(qkv, cos, sin, 4, 4)
    with attention_kernels(qkv.device):
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert y.transpose(1, 2).is_contiguous()
