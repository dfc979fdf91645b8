"""The model: presets and overrides, parameter counts, padding, causality, GQA and RoPE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from train.model import PRESETS, Transformer, apply_rope, count_params, preset_config, rope_tables


def test_presets_have_their_advertised_sizes():
    sizes = {name: count_params(preset_config(name, vocab_size=50_257)) for name in PRESETS}
    assert sizes["tiny"] < 5e6
    assert 120e6 < sizes["124m"] < 128e6
    assert 340e6 < sizes["350m"] < 380e6
    assert 1.0e9 < sizes["1b"] < 1.2e9


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_count_matches_the_built_model(tied):
    cfg = preset_config("tiny", vocab_size=300, tie_embeddings=tied)
    model = Transformer(cfg)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    vocab_matrices = (1 if tied else 2) * cfg.padded_vocab_size * cfg.d_model
    assert count_params(cfg, embeddings=False) == count_params(cfg) - vocab_matrices


def test_every_field_can_be_overridden_and_is_checked():
    cfg = preset_config(
        "124m", vocab_size=1000, n_layer=3, d_model=128, n_head=4, n_kv_head=2, ffn_hidden=256
    )
    assert (cfg.n_layer, cfg.d_model, cfg.n_kv_head, cfg.head_dim) == (3, 128, 2, 32)
    with pytest.raises(ValueError, match="unknown preset 'xl'"):
        preset_config("xl", vocab_size=1000)
    with pytest.raises(ValidationError, match="not divisible by n_kv_head"):
        preset_config("tiny", vocab_size=1000, n_kv_head=3)
    with pytest.raises(ValidationError, match="extra"):
        preset_config("tiny", vocab_size=1000, n_layers=3)


def test_vocab_is_padded_to_a_multiple_of_128():
    cfg = preset_config("tiny", vocab_size=300)
    assert cfg.padded_vocab_size == 384
    logits = Transformer(cfg)(torch.randint(0, 300, (2, 8)))
    assert logits.shape == (2, 8, 384)
    assert preset_config("tiny", vocab_size=256).padded_vocab_size == 256


def test_a_token_only_influences_later_positions():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny", vocab_size=300)).eval()
    idx = torch.randint(0, 300, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (idx[0, 10] + 1) % 300
    a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_grouped_query_attention_shares_each_kv_head_with_its_query_group():
    torch.manual_seed(0)
    cfg = preset_config("tiny", vocab_size=300, n_head=4, n_kv_head=2)
    attn = Transformer(cfg).blocks[0].attn
    x = torch.randn(2, 8, cfg.d_model)
    cos, sin = rope_tables(cfg.head_dim, 8, cfg.rope_theta)
    q = apply_rope(attn.wq(x).view(2, 8, 4, -1).transpose(1, 2), cos, sin)
    k = apply_rope(attn.wk(x).view(2, 8, 2, -1).transpose(1, 2), cos, sin)
    v = attn.wv(x).view(2, 8, 2, -1).transpose(1, 2)
    # Query heads 0, 1 read kv head 0; heads 2, 3 read kv head 1.
    k, v = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    expected = attn.wo(
        F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 8, -1)
    )
    assert torch.allclose(attn(x, cos, sin), expected, atol=1e-6)


def test_rope_scores_depend_only_on_the_relative_position():
    cos, sin = rope_tables(8, 64, 10_000.0)
    q, k = torch.randn(8), torch.randn(8)

    def score(i: int, j: int) -> torch.Tensor:
        return apply_rope(q, cos[i], sin[i]) @ apply_rope(k, cos[j], sin[j])

    assert torch.allclose(score(5, 2), score(40, 37), atol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 4), atol=1e-3)


def test_loss_is_the_mean_cross_entropy_and_long_inputs_are_refused():
    torch.manual_seed(0)
    cfg = preset_config("tiny", vocab_size=300, max_seq_len=16)
    model = Transformer(cfg)
    idx, targets = torch.randint(0, 300, (2, 2, 16))
    loss = model(idx, targets)
    assert torch.allclose(loss, F.cross_entropy(model(idx).view(-1, 384), targets.view(-1)))
    # At init every entry is about equally likely: the loss is near ln(padded vocab).
    assert abs(loss.item() - torch.log(torch.tensor(384.0)).item()) < 0.2
    with pytest.raises(ValueError, match="exceed the model's max_seq_len 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("fp32_residual", [False, True])
def test_under_autocast_the_residual_stream_keeps_the_configured_dtype(fp32_residual):
    model = Transformer(preset_config("tiny", vocab_size=300, fp32_residual=fp32_residual))
    seen = []
    for block in model.blocks:
        block.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    idx = torch.randint(0, 300, (2, 16))
    with torch.autocast("cpu", torch.bfloat16):
        loss = model(idx[:, :-1], idx[:, 1:])
    assert seen == [torch.float32 if fp32_residual else torch.bfloat16] * len(model.blocks)
    assert loss.dtype == torch.float32 and loss.isfinite()
    seen.clear()
    model(idx)  # without autocast everything is fp32, whatever the setting
    assert seen == [torch.float32] * len(model.blocks)
