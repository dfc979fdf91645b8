"""The settings of `train finetune sft|dpo`: one typed config, checked before any model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from train.config import ConfigError
from train.finetune.lora import TARGETS, LoRASettings, Targets
from train.user_files import OutputDir


class FinetuneConfig(BaseModel):
    """Everything a finetuning run depends on."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    method: Literal["sft", "dpo"] = Field(
        "sft", description="sft: learn the responses; dpo: learn preferences."
    )
    base: Path = Field(
        description="Model to finetune: a checkpoint directory, or a run directory (its newest)."
    )
    data: Path = Field(
        description="Training examples, JSONL (chat messages, prompt/response, or preferences)."
    )
    out: OutputDir = Field(
        description="Run directory: metrics.jsonl, loss_curve.png, checkpoints/ (and adapter/)."
    )
    valid_data: Path | None = Field(
        None, description="Held-out examples, JSONL (default: --valid-fraction of --data)."
    )
    valid_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of --data held out for evaluation when there is no --valid-data."
    )
    seq_len: int | None = Field(
        None, gt=0, description="Tokens per row (default: the base's max_seq_len); longer examples are cut."
    )
    pack: bool = Field(True, description="SFT: several examples per row, each attending only to itself.")
    batch_size: int = Field(8, gt=0, description="Rows per optimizer step (SFT: packed rows; DPO: pairs).")
    micro_batch_size: int | None = Field(
        None, gt=0, description="Rows per forward/backward (default: batch_size); accumulation does the rest."
    )
    epochs: int = Field(3, gt=0, description="Passes over the training examples.")
    lr: float = Field(2e-5, gt=0, description="Peak learning rate (LoRA usually takes 1e-4 to 1e-3).")
    min_lr: float = Field(0.0, ge=0, description="Learning rate at the end of the cosine decay.")
    warmup_steps: int = Field(10, ge=0, description="Steps of linear warmup.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on matrices.")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW beta2.")
    grad_clip: float = Field(1.0, ge=0, description="Clip the gradient norm to this (0: no clipping).")
    seed: int = Field(1337, ge=0, description="Seed of the valid split, the row order and the LoRA init.")
    log_every: int = Field(10, gt=0, description="Log the training loss every N steps.")
    eval_every: int = Field(
        0, ge=0, description="Evaluate every N steps (0: only before and after training)."
    )
    lora_rank: int = Field(0, ge=0, description="LoRA rank (0: full finetuning of every weight).")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA alpha: the update is scaled by alpha / rank.")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA branch's input.")
    lora_targets: Targets = Field(
        ["q", "k", "v", "o"], min_length=1, description=f"Layers that get adapters: {','.join(TARGETS)}."
    )
    merge: bool = Field(False, description="LoRA: also fold the adapters into a normal checkpoint.")
    beta: float = Field(0.1, gt=0, description="DPO: how far the policy may move from the reference.")
    chat_template: Path | None = Field(
        None, description="Jinja chat template file (default: the base's, else the built-in one)."
    )
    eos_token: str | None = Field(
        None, description="End-of-turn token (default: the base's tokenizer config, else <|endoftext|>)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 on CPU."
    )
    progress: bool = Field(True, description="Show a progress bar on the terminal.")

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _split_targets(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by micro_batch_size {self.micro_batch_size}"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")
        if self.merge and not self.lora_rank:
            raise ValueError("merge folds LoRA adapters into the base; it needs --lora-rank > 0")
        return self

    @property
    def lora(self) -> LoRASettings | None:
        """The adapters' settings, or None for full finetuning."""
        if not self.lora_rank:
            return None
        return LoRASettings(
            rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout, targets=self.lora_targets
        )


def load_finetune_config(values: dict[str, Any]) -> FinetuneConfig:
    """A FinetuneConfig from flag values; a bad value raises ConfigError naming its flag."""
    try:
        return FinetuneConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        flag = f"--{str(first['loc'][0]).replace('_', '-')}: " if first["loc"] else ""
        message = "required" if first["type"] == "missing" else first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{flag}{message}") from None
