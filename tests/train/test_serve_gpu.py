"""The CUDA paths of the serving engine: the Triton paged attention, torch.compile and CUDA graphs.

Skipped without a GPU (CI has none); run on one with `pytest --noconftest tests/train/test_serve_gpu.py`.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from train.model import Transformer, preset_config
from train.serve import LLM, SamplingParams, attention

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize(
    "batch, n_head, n_kv_head, head_dim, splits",
    [(1, 16, 4, 64, 8), (5, 8, 8, 64, 1), (33, 12, 4, 64, 3), (3, 4, 1, 128, 1), (2, 16, 2, 128, 40)],
)
def test_triton_decode_attention_matches_the_gathering_reference(batch, n_head, n_kv_head, head_dim, splits):
    from train.serve import triton_attention

    torch.manual_seed(batch)
    block_size, blocks, width = 16, 300, 12
    k_cache = torch.randn(blocks, block_size, n_kv_head, head_dim, device="cuda", dtype=torch.bfloat16)
    v_cache = torch.randn_like(k_cache)
    q = torch.randn(batch, n_head, head_dim, device="cuda", dtype=torch.bfloat16)
    tables = torch.stack([torch.randperm(blocks)[:width] for _ in range(batch)]).cuda()
    lens = torch.randint(1, width * block_size + 1, (batch,), device="cuda")
    expected = attention.paged_decode_attention(q.float(), k_cache.float(), v_cache.float(), tables, lens)
    got = triton_attention.paged_decode_attention(q, k_cache, v_cache, tables, lens, splits)
    assert torch.isfinite(got).all()
    assert ((got.float() - expected).norm() / expected.norm()).item() < 1e-2


@pytest.mark.parametrize("rows", [1, 2, 3, 4])
def test_fused_matvec_kernels_match_the_unfused_ops(rows):
    """Each fused decode kernel against the ops it replaces, in bf16 on a 0.5B model's layer shapes."""
    from train.model import apply_rope, rope_tables
    from train.serve import triton_matvec as tm
    from train.serve.model_runner import rms_norm, silu_mul

    torch.manual_seed(rows)
    d, ffn, n_head, n_kv, head_dim, vocab, eps = 1024, 4096, 16, 4, 64, 50304, 1e-5
    bf16 = {"device": "cuda", "dtype": torch.bfloat16}

    def close(got, expected):
        assert ((got.float() - expected.float()).norm() / expected.float().norm()).item() < 1e-2

    x = torch.randn(rows, d, **bf16)
    gain = 1 + 0.1 * torch.randn(d, **bf16)
    h = rms_norm(x, gain, eps)
    lm_head = torch.randn(vocab, d, **bf16) / d**0.5
    close(tm.norm_matvec(x, gain, eps, lm_head), F.linear(h, lm_head))
    w_down = torch.randn(d, ffn, **bf16) / ffn**0.5
    act = torch.randn(rows, ffn, **bf16)
    close(tm.matvec_add(act, w_down, x), x + F.linear(act, w_down))
    w_gate_up = torch.randn(2 * ffn, d, **bf16) / d**0.5
    close(tm.norm_matvec_silu(x, gain, eps, w_gate_up), silu_mul(F.linear(h, w_gate_up)))

    wqkv = torch.randn((n_head + 2 * n_kv) * head_dim, d, **bf16) / d**0.5
    cos, sin = (t.cuda() for t in rope_tables(head_dim, 2048, 10000.0))
    positions = torch.randint(0, 2048, (rows,), device="cuda")
    slots = torch.randperm(64, device="cuda")[:rows]
    k_cache = torch.zeros(4, 16, n_kv, head_dim, **bf16)
    v_cache = torch.zeros_like(k_cache)
    q = tm.norm_matvec_rope_cache(x, gain, eps, wqkv, cos, sin, positions, slots, k_cache, v_cache, n_head)
    eq, ek, ev = F.linear(h, wqkv).split([n_head * head_dim, n_kv * head_dim, n_kv * head_dim], -1)
    c, s = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
    close(q, apply_rope(eq.view(rows, n_head, head_dim), c, s))
    close(k_cache.view(-1, n_kv, head_dim)[slots], apply_rope(ek.view(rows, n_kv, head_dim), c, s))
    close(v_cache.view(-1, n_kv, head_dim)[slots], ev.view(rows, n_kv, head_dim))
    others = torch.ones(64, dtype=torch.bool, device="cuda")
    others[slots] = False
    assert (k_cache.view(-1, n_kv, head_dim)[others] == 0).all(), "only the tokens' slots are written"


def _reference_logprobs(model: Transformer, prompt: list[int], output: list[int]) -> torch.Tensor:
    """The model's log-probability of each output token, from one forward pass over prompt + output."""
    ids = torch.tensor([prompt + output], device="cuda")
    with torch.no_grad():
        logits = model(ids)[0, len(prompt) - 1 : -1, : model.cfg.vocab_size].float()
    return logits.log_softmax(-1).gather(1, torch.tensor(output, device="cuda")[:, None])[:, 0]


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 0.5)])
def test_engine_with_cuda_graphs_follows_the_model(dtype, tolerance):
    """Greedy outputs of the compiled, graph-replayed engine carry the model's own log-probabilities (in
    bf16 within rounding: these logits are large, about ±10, where a bf16 step is 0.06); in fp32 they are
    the model's greedy tokens exactly."""
    torch.manual_seed(0)
    model = Transformer(
        preset_config(
            "tiny", vocab_size=300, max_seq_len=128, d_model=128, n_head=2, n_kv_head=1, init_std=0.2
        )
    )
    llm = LLM.from_model(model, None, device="cuda", dtype=dtype, max_num_seqs=12, max_num_batched_tokens=512)
    assert llm.engine.runner.graphs, "decode runs through CUDA graphs"
    rng = random.Random(0)
    prompts = [[rng.randrange(300) for _ in range(rng.randint(1, 60))] for _ in range(10)]
    params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, logprobs=0, detokenize=False)
    outs = llm.generate(prompts, params)
    model = model.cuda().to(getattr(torch, dtype)).eval()
    for prompt, out in zip(prompts, outs, strict=True):
        expected = _reference_logprobs(model, prompt, out.token_ids)
        got = torch.tensor([lp.logprob for lp in out.logprobs], device="cuda")
        assert (got - expected).abs().max().item() < tolerance
        assert (got - expected).abs().mean().item() < tolerance / 5
        if dtype == "float32":
            with torch.no_grad():
                ids = list(prompt)
                for _ in range(len(out.token_ids)):
                    ids.append(int(model(torch.tensor([ids], device="cuda"))[0, -1, :300].argmax()))
            assert ids[len(prompt) :] == out.token_ids
