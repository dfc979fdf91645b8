"""The settings of the serving engine: cache, batching and queue limits, device and precision."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineConfig(BaseModel):
    """How the engine uses its device; every field has a default that works on a CPU and on one GPU."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    block_size: int = Field(16, gt=0, description="Tokens per KV-cache block (a power of two ≥ 16 on CUDA).")
    num_kv_blocks: int | None = Field(
        None,
        gt=0,
        description="KV-cache blocks (default: as many as gpu_memory_utilization allows on CUDA, capped at "
        "what max_num_seqs full-length sequences need; that cap within 1 GiB on CPU).",
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of the GPU's memory that weights and KV cache may take."
    )
    max_num_seqs: int = Field(256, gt=0, description="Sequences decoded together (the running batch).")
    max_num_batched_tokens: int = Field(
        8192, gt=0, description="Prompt tokens prefilled in one step (at least the model's context)."
    )
    max_waiting: int = Field(
        1024, gt=0, description="Requests that may wait for a slot; one more is refused (HTTP 429)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights and KV cache: auto is bfloat16 on CUDA, float32 on CPU."
    )
    enforce_eager: bool = Field(
        False,
        description="On CUDA, skip torch.compile, CUDA graphs and the fused decode matvecs (slower; for debugging).",
    )
    seed: int = Field(0, description="Seed of the sampling of requests that bring no seed of their own.")
