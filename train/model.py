"""A decoder-only transformer in the Llama style: RMSNorm, RoPE, grouped-query attention, SwiGLU.

One file, read top to bottom: config and presets, then the modules from the smallest up. Attention goes
through `F.scaled_dot_product_attention`; `attention_kernels` orders its GPU backends for training. RoPE
uses the rotate-half layout of HF's Llama so that an export needs no weight permutation. The q, k, v (and
the gate and up) projections are separate parameters, as in HF's Llama, but run as one matmul each.
On CUDA, three memory-bound steps run as Triton kernels, forward and backward, where the compiled
PyTorch code was slow: RoPE with the split into heads (rope_kernels.py), SwiGLU's activation
(swiglu_kernels.py) and the cross-entropy (cross_entropy_kernels.py); each module says why and has an
`ENABLED` switch for A/B runs. The CPU path is the PyTorch code.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

try:  # Triton comes with CUDA builds of torch
    from train import cross_entropy_kernels, rope_kernels, swiglu_kernels
except ImportError:
    cross_entropy_kernels = rope_kernels = swiglu_kernels = None

# Embedding and output rows are padded to a multiple of this: tensor-core friendly matmul shapes.
VOCAB_MULTIPLE = 128


class ModelConfig(BaseModel):
    """The shape of the model; every field but the vocabulary can be overridden from a preset."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    vocab_size: int = Field(gt=0, description="Entries in the tokenizer; the embedding is padded past it.")
    n_layer: int = Field(12, gt=0, description="Transformer blocks.")
    d_model: int = Field(768, gt=0, description="Width of the residual stream.")
    n_head: int = Field(12, gt=0, description="Query heads.")
    n_kv_head: int = Field(12, gt=0, description="Key/value heads (grouped-query attention when < n_head).")
    ffn_hidden: int = Field(2048, gt=0, description="Hidden width of the SwiGLU feed-forward.")
    max_seq_len: int = Field(1024, gt=0, description="Longest sequence the RoPE tables cover.")
    rope_theta: float = Field(10_000.0, gt=0, description="RoPE base frequency.")
    norm_eps: float = Field(1e-5, gt=0, description="RMSNorm epsilon.")
    tie_embeddings: bool = Field(True, description="The output projection shares the token embedding matrix.")
    init_std: float = Field(0.02, gt=0, description="Std of the normal init of every weight matrix.")
    # Off by default as in Megatron-LM (--fp32-residual-connection) and torchtitan (bf16 activations):
    # an fp32 stream makes every residual add and RMSNorm move twice the bytes, 3.7% of the 124m step
    # on an H200 (bench/RESULTS.md), and the norms compute in fp32 either way.
    fp32_residual: bool = Field(
        False,
        description="Under autocast, keep the residual stream in fp32 (as HF's Llama does) instead of the "
        "autocast dtype.",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not divisible by n_kv_head {self.n_kv_head}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} (d_model / n_head) must be even for RoPE")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / VOCAB_MULTIPLE) * VOCAB_MULTIPLE


# Shapes only; the vocabulary comes from the shards' metadata.json. 124m and 350m are GPT-2 small and
# medium (same depth, width and parameter count with a SwiGLU of 8/3·d); 1b is Llama 3.2 1B's shape.
PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, d_model=64, n_head=4, n_kv_head=2, ffn_hidden=192, max_seq_len=256),
    "124m": dict(n_layer=12, d_model=768, n_head=12, n_kv_head=12, ffn_hidden=2048, max_seq_len=1024),
    "350m": dict(n_layer=24, d_model=1024, n_head=16, n_kv_head=16, ffn_hidden=2816, max_seq_len=1024),
    "1b": dict(
        n_layer=16,
        d_model=2048,
        n_head=32,
        n_kv_head=8,
        ffn_hidden=8192,
        max_seq_len=2048,
        rope_theta=500_000.0,
    ),
}


def preset_config(preset: str, vocab_size: int, **overrides) -> ModelConfig:
    """The preset's shape with `overrides` applied (pydantic's ValidationError for a bad field or value)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return ModelConfig(vocab_size=vocab_size, **{**PRESETS[preset], **overrides})


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 as HF's Llama does: bf16 sums of squares lose too much precision.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return x32.type_as(x) * self.weight


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency), shaped [max_seq_len, head_dim] for rotate-half."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, T, hd] by position: the first and second halves of hd are the pair's two axes."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).type_as(x)


# SDPA's backends in order of preference on a GPU. On Hopper, cuDNN's fused attention is faster than the
# FlashAttention-2 kernel that PyTorch ships (0.41 vs 0.64 ms forward + backward at the 124m shape on an
# H200; +7% tokens/s for the whole 124m step, bench/RESULTS.md). Pinned here because PyTorch's default
# order has changed between releases. SDPA passes over a backend that cannot take the inputs, so flash
# and the rest remain as fallbacks.
GPU_ATTENTION_BACKENDS = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]


def _triton(kernels, x: torch.Tensor) -> bool:
    """Whether to run a Triton kernel module's op on x: CUDA tensors, the module imported and enabled."""
    return x.is_cuda and kernels is not None and kernels.ENABLED


def _fused_output_loss(x: torch.Tensor) -> bool:
    """Whether the training loss takes cross_entropy_kernels' fused output matmul + loss (its switch)."""
    return _triton(cross_entropy_kernels, x) and cross_entropy_kernels.FUSED_LINEAR


def attention_kernels(device: torch.device) -> contextlib.AbstractContextManager:
    """Context for the forward pass: cuDNN attention first on CUDA, PyTorch's default choice elsewhere.

    torch.compile fixes the backend when it traces the first call, so the first call must be inside it.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    return sdpa_kernel(GPU_ATTENTION_BACKENDS, set_priority=True)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.n_head * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self._heads(x, cos, sin)
        # enable_gqa lets the flash kernel read each K/V head for its group of query heads, no copies.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_head != self.n_head)
        # A view, no copy, when y is token-major in memory: cuDNN's output after rope_split's.
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))

    def _heads(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [B, T, d] → q [B, H, T, hd], k and v [B, KV, T, hd], q and k rotated."""
        B, T, _ = x.shape
        if _triton(rope_kernels, x) and rope_kernels.SEPARATE_V:  # v's matmul writes its heads in place
            qk = F.linear(x, torch.cat([self.wq.weight, self.wk.weight]))
            q, k = rope_kernels.rope_split_qk(qk, cos, sin, self.n_head, self.n_kv_head)
            v = F.linear(x, self.wv.weight).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
            return q, k, v
        # One matmul over the stacked weights instead of three: fewer, wider GEMMs (768 → 2304 columns at
        # 124m) keep the tensor cores busier. The copy is small and, under autocast, compile fuses it with
        # the bf16 cast that every weight gets anyway.
        qkv = F.linear(x, torch.cat([self.wq.weight, self.wk.weight, self.wv.weight]))
        if _triton(rope_kernels, qkv):
            return rope_kernels.rope_split(qkv, cos, sin, self.n_head, self.n_kv_head)
        q, k, v = qkv.split(
            [self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim], -1
        )
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w_gate = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w_up = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w_down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Gate and up in one matmul, for the same reason as q, k, v in Attention.
        gate_up = F.linear(x, torch.cat([self.w_gate.weight, self.w_up.weight]))
        if _triton(swiglu_kernels, gate_up):
            hidden = swiglu_kernels.swiglu(gate_up.view(-1, gate_up.shape[-1])).view(*x.shape[:-1], -1)
        else:
            gate, up = gate_up.chunk(2, dim=-1)
            hidden = F.silu(gate) * up
        return self.w_down(hidden)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """Token ids [B, T] → logits [B, T, padded vocab], or the mean cross-entropy when targets are given."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # Tied: no separate module, so the state dict holds the matrix once (safetensors refuses aliases).
        self.output = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False)
        )
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        # Not persistent: derived from the config, so they stay out of checkpoints.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, init_std), with the projections into the residual stream scaled by 1/√(2L)."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=self.cfg.init_std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        residual_std = self.cfg.init_std / math.sqrt(2 * self.cfg.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.wo.weight, std=residual_std)
            nn.init.normal_(block.ffn.w_down.weight, std=residual_std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        seq_len = idx.shape[1]
        if seq_len > self.cfg.max_seq_len:
            raise ValueError(f"{seq_len} tokens exceed the model's max_seq_len {self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[:seq_len], self.rope_sin[:seq_len]
        x = self.tok_emb(idx)
        if not self.cfg.fp32_residual and torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))  # the residual adds then stay in it
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.norm(x)
        weight = self.tok_emb.weight if self.output is None else self.output.weight
        if targets is not None and torch.is_grad_enabled() and _fused_output_loss(x):
            # The output matmul and the loss in one op; the autocast cast that F.linear would apply.
            dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
            return cross_entropy_kernels.linear_cross_entropy(
                x.reshape(-1, x.shape[-1]).to(dtype), weight.to(dtype), targets.reshape(-1)
            )
        logits = F.linear(x, weight)
        if targets is None:
            return logits
        logits, targets = logits.view(-1, logits.shape[-1]), targets.reshape(-1)
        if _triton(cross_entropy_kernels, logits):  # one pass over the logits, sums in fp32
            return cross_entropy_kernels.cross_entropy(logits, targets)
        # fp32 softmax: bf16 log-probabilities over ~50k entries are too coarse for a faithful loss.
        return F.cross_entropy(logits.float(), targets)


def count_params(cfg: ModelConfig, embeddings: bool = True) -> int:
    """Parameters of a model of this shape; `embeddings=False` leaves out the vocabulary matrices
    (the token table and, when untied, the output projection), as in scaling-law parameter counts."""
    d, hd = cfg.d_model, cfg.head_dim
    attention = d * cfg.n_head * hd * 2 + d * cfg.n_kv_head * hd * 2
    block = attention + 3 * d * cfg.ffn_hidden + 2 * d
    body = cfg.n_layer * block + d  # + the final norm
    vocab = cfg.padded_vocab_size * d * (1 if cfg.tie_embeddings else 2)
    return body + vocab if embeddings else body
