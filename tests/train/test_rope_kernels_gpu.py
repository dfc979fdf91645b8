"""train/rope_kernels.py: the Triton RoPE + head split against the PyTorch code it replaces on CUDA.

Skipped without a GPU (CI has none); run on one with `pytest --noconftest tests/train/test_rope_kernels_gpu.py`.
"""

from __future__ import annotations

import pytest
import torch

from train.model import apply_rope, rope_tables

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
rope_kernels = pytest.importorskip("train.rope_kernels", reason="needs Triton")


def reference(qkv, cos, sin, n_head, n_kv_head):
    batch, seq, width = qkv.shape
    head_dim = width // (n_head + 2 * n_kv_head)
    q, k, v = qkv.split([n_head * head_dim, n_kv_head * head_dim, n_kv_head * head_dim], -1)
    q = q.view(batch, seq, n_head, head_dim).transpose(1, 2)
    k = k.view(batch, seq, n_kv_head, head_dim).transpose(1, 2)
    v = v.view(batch, seq, n_kv_head, head_dim).transpose(1, 2)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


@pytest.mark.parametrize(
    "batch, seq, n_head, n_kv_head, head_dim", [(2, 1024, 12, 12, 64), (3, 77, 8, 2, 128), (1, 5, 4, 1, 16)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("grad_layout", ["token-major", "head-major"])
def test_rope_split_matches_the_pytorch_code_forward_and_backward(
    batch, seq, n_head, n_kv_head, head_dim, dtype, grad_layout
):
    torch.manual_seed(seq)
    cos, sin = (t[:seq].cuda() for t in rope_tables(head_dim, 2048, 10000.0))
    qkv = torch.randn(batch, seq, (n_head + 2 * n_kv_head) * head_dim, device="cuda", dtype=dtype)
    ours_in, ref_in = qkv.clone().requires_grad_(), qkv.clone().requires_grad_()
    ours = rope_kernels.rope_split(ours_in, cos, sin, n_head, n_kv_head)
    ref = reference(ref_in, cos, sin, n_head, n_kv_head)
    # randn_like keeps the references' token-major strides; cuDNN's gradients may come in either layout.
    grads = [torch.randn_like(t) for t in ref]
    if grad_layout == "head-major":
        grads = [g.contiguous() for g in grads]
    torch.autograd.backward(ours, grads)
    torch.autograd.backward(ref, grads)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
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


def attention_reference(qkv, cos, sin, n_head):
    """rope_attention in PyTorch, in fp32: RoPE, the split and causal attention (math backend)."""
    q, k, v = reference(qkv.float(), cos, sin, n_head, n_head)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize("batch, seq, n_head, head_dim", [(2, 1024, 12, 64), (3, 77, 4, 128), (1, 5, 2, 16)])
def test_rope_attention_matches_rope_then_attention_forward_and_backward(batch, seq, n_head, head_dim):
    torch.manual_seed(seq)
    cos, sin = (t[:seq].cuda() for t in rope_tables(head_dim, 2048, 10000.0))
    qkv = torch.randn(batch, seq, 3 * n_head * head_dim, device="cuda", dtype=torch.bfloat16)
    ours_in, ref_in = qkv.clone().requires_grad_(), qkv.float().requires_grad_()  # the reference in fp32
    y = rope_kernels.rope_attention(ours_in, cos, sin, n_head, n_head)[0]
    want = attention_reference(ref_in, cos, sin, n_head)
    dy = torch.randn_like(y)
    y.backward(dy)
    want.backward(dy.float())
    # q's token-major layout carries over, so the output projection reads y with no copy
    assert y.shape == want.shape and y.transpose(1, 2).is_contiguous()
    torch.testing.assert_close(y.float(), want, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(ours_in.grad.float(), ref_in.grad, atol=5e-2, rtol=5e-2)


def test_rope_attention_compiled_equals_eager():
    """Inductor traces the op's body: v stays a strided view of the projection through cuDNN's call."""
    cos, sin = (t[:256].cuda() for t in rope_tables(64, 256, 10000.0))
    qkv = torch.randn(2, 256, 3 * 4 * 64, device="cuda", dtype=torch.bfloat16)

    def loss(x):
        return rope_kernels.rope_attention(x, cos, sin, 4, 4)[0].float().square().sum()

    grads = []
    for fn in (loss, torch.compile(loss, fullgraph=True)):
        x = qkv.clone().requires_grad_()
        fn(x).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-2, rtol=1e-2)


def test_cudnn_attention_usable_follows_the_gpu_dtype_and_backend_order():
    """The guard in front of rope_attention: cuDNN's attention in bf16 on this GPU, not in fp32 (which
    cuDNN's attention does not take), and not where the backend order leaves cuDNN out."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from train.model import attention_kernels

    device = torch.device("cuda")
    with attention_kernels(device):
        assert rope_kernels.cudnn_attention_usable(0, 12, 64, torch.bfloat16)
        assert not rope_kernels.cudnn_attention_usable(0, 12, 64, torch.float32)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
        assert not rope_kernels.cudnn_attention_usable(0, 12, 64, torch.bfloat16)


@pytest.mark.parametrize("order", ["cudnn", "flash"])
def test_compiled_model_takes_rope_attention_in_one_graph_only_where_cudnn_is_usable(order, monkeypatch):
    """With WITH_ATTENTION the compiled forward is one graph (the guard is a constant to torch.compile)
    that calls rope_attention in every layer under cuDNN-first attention, and rope_split under flash."""
    from torch._dynamo.testing import EagerAndRecordGraphs
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from train.model import Transformer, attention_kernels, preset_config

    monkeypatch.setattr(rope_kernels, "WITH_ATTENTION", True)
    cfg = preset_config("tiny", vocab_size=512, n_kv_head=4)
    model = Transformer(cfg).cuda()
    idx = torch.randint(0, 512, (2, 65), device="cuda")
    backend = EagerAndRecordGraphs()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    context = attention_kernels(idx.device) if order == "cudnn" else sdpa_kernel([SDPBackend.FLASH_ATTENTION])
    with context, torch.autocast("cuda", torch.bfloat16):
        compiled(idx[:, :-1], idx[:, 1:]).backward()
    (graph,) = backend.graphs
    code = graph.code
    want, other = ("rope_attention", "rope_split") if order == "cudnn" else ("rope_split", "rope_attention")
    assert code.count(f"webcrawl_lm.{want}") == cfg.n_layer and other not in code, code[:2000]
