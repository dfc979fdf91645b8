"""The settings of `train pretrain`: a typed config read from YAML and/or command-line flags.

Precedence: field defaults < `--config FILE.yaml` < flags. Every field has a default and a one-line
description (the CLI's help text is generated from them), and the whole config is checked before any
data is read; a bad value raises `ConfigError` with one line naming the flag or YAML key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from train.data import DataSource
from train.model import PRESETS, VOCAB_MULTIPLE, ModelConfig, preset_config
from train.user_files import OutputDir, read_text


class ConfigError(ValueError):
    """A setting that cannot work; the message names it and says what to change."""


# The model fields a run may override (flags and `model:` keys): the vocabulary comes from the shards,
# max_seq_len from seq_len.
MODEL_OVERRIDE_KEYS = [k for k in ModelConfig.model_fields if k not in ("vocab_size", "max_seq_len")]


class ModelOverrideError(ValueError):
    """A bad `model` override; `key` is the model field (None: the shape as a whole), so that
    `load_pretrain_config` can name the flag or the YAML file it came from."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(f"model{'.' + key if key else ''}: {message}")
        self.key, self.message = key, message


class PretrainConfig(BaseModel):
    """Everything a pretraining run depends on."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: list[DataSource] = Field(min_length=1, description="Shard directories to blend: DIR or DIR:WEIGHT.")
    out: OutputDir = Field(
        description="Run directory: checkpoints/, metrics.jsonl, loss_curve.png, config.json."
    )
    preset: str = Field("124m", description=f"Model shape: {', '.join(PRESETS)}.")
    model: dict[str, Any] = Field(default_factory=dict, description="Overrides of the preset's model fields.")
    seq_len: int | None = Field(
        None, gt=0, description="Tokens per sample (default: the preset's max_seq_len)."
    )
    micro_batch_size: int = Field(8, gt=0, description="Samples per forward/backward on one GPU.")
    global_batch_size: int = Field(
        64, gt=0, description="Samples per optimizer step over all GPUs (accumulation makes up the rest)."
    )
    max_steps: int = Field(1000, gt=0, description="Optimizer steps; the cosine reaches min_lr here.")
    lr: float = Field(6e-4, gt=0, description="Peak learning rate, reached after warmup.")
    min_lr: float = Field(6e-5, ge=0, description="Learning rate at the end of the cosine decay.")
    warmup_steps: int = Field(100, ge=0, description="Steps of linear warmup.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay on matrices (not on norm gains).")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW beta2.")
    grad_clip: float = Field(1.0, ge=0, description="Clip the global gradient norm to this (0: no clipping).")
    seed: int = Field(1337, ge=0, description="Seed of the init, the train/valid split and the data order.")
    valid_fraction: float = Field(
        0.01, ge=0, lt=1, description="Fraction of documents held out for validation."
    )
    eval_every: int = Field(
        200, ge=0, description="Validate every N steps and at the end (0: only at the end)."
    )
    eval_samples: int = Field(
        256, gt=0, description="Valid samples per evaluation (at most the whole split)."
    )
    log_every: int = Field(10, gt=0, description="Log loss, lr, grad norm, tokens/s and MFU every N steps.")
    ckpt_every: int = Field(
        500, ge=0, description="Checkpoint every N steps and at the end (0: only at the end)."
    )
    keep_checkpoints: int = Field(2, gt=0, description="Newest checkpoints kept on disk.")
    stop_after: int | None = Field(
        None, gt=0, description="Stop (with a checkpoint) after this step, as a preempted job would."
    )
    resume: bool = Field(False, description="Continue from the newest checkpoint in OUT.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 on CPU."
    )
    compile: bool | None = Field(
        None, description="torch.compile the model (default: on for CUDA, off on CPU)."
    )
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="Data parallelism under torchrun: DDP or FSDP2."
    )
    deterministic: bool = Field(False, description="Deterministic kernels only (bitwise-repeatable, slower).")
    peak_tflops: float | None = Field(
        None, gt=0, description="Per-GPU peak for MFU, if the device table lacks it."
    )
    progress: bool = Field(True, description="Show a progress bar on the terminal.")

    @field_validator("data", mode="before")
    @classmethod
    def _parse_data(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        return [DataSource.parse(item) if isinstance(item, str) else item for item in items]

    @field_validator("data")
    @classmethod
    def _data_exists(cls, value: list[DataSource]) -> list[DataSource]:
        seen: dict[Path, DataSource] = {}
        for source in value:
            if not source.path.is_dir():
                raise ValueError(f"data directory {source.path} does not exist")
            # Refused rather than merged (a Megatron user expects one or the other): each entry is read in
            # the same seeded order, so a repeat feeds each of its samples twice per epoch, and summing the
            # weights would guess at what was meant. A repeat is usually a slip (a glob and a name).
            first = seen.setdefault(source.path.resolve(), source)
            if first is not source:
                also = f" (also as {first.path})" if first.path != source.path else ""
                raise ValueError(
                    f"data directory {source.path} is given twice{also}; give it once, with the sum of the weights"
                )
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose from {', '.join(PRESETS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PretrainConfig:
        if "max_seq_len" in self.model:
            raise ModelOverrideError("max_seq_len", "follows seq_len; set seq_len instead")
        if "vocab_size" in self.model:
            raise ModelOverrideError(
                "vocab_size", "comes from the shards' tokenizer (metadata.json); remove it"
            )
        try:
            shape = self.build_model_config(vocab_size=VOCAB_MULTIPLE)
        except ValidationError as err:
            first = err.errors()[0]
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                message = f"unknown model setting; choose from {', '.join(MODEL_OVERRIDE_KEYS)}"
            raise ModelOverrideError(".".join(map(str, first["loc"])) or None, message) from None
        # Typed values ("4" from a flag becomes 4), so a resumed run compares like with like.
        self.model = {key: getattr(shape, key) for key in self.model}
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not divisible by "
                f"micro_batch_size {self.micro_batch_size}"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} is more than max_steps {self.max_steps}")
        if self.stop_after is not None and self.stop_after > self.max_steps:
            raise ValueError(f"stop_after {self.stop_after} is beyond max_steps {self.max_steps}")
        return self

    @property
    def sequence_length(self) -> int:
        return self.seq_len or PRESETS[self.preset]["max_seq_len"]

    def build_model_config(self, vocab_size: int) -> ModelConfig:
        return preset_config(self.preset, vocab_size, **{**self.model, "max_seq_len": self.sequence_length})


# Settings that shape the training trajectory: a resumed run must keep them, or it would not continue
# the same run. The rest (logging, checkpoint cadence, compile, device, micro batch...) may change.
TRAJECTORY_FIELDS = (
    "data",
    "preset",
    "model",
    "seq_len",
    "global_batch_size",
    "max_steps",
    "lr",
    "min_lr",
    "warmup_steps",
    "weight_decay",
    "beta1",
    "beta2",
    "grad_clip",
    "seed",
    "valid_fraction",
)


def trajectory(cfg: PretrainConfig) -> dict:
    """The trajectory-shaping settings as JSON values (data paths resolved)."""
    values = cfg.model_dump(mode="json", include=set(TRAJECTORY_FIELDS))
    values["data"] = [{"path": str(s.path.resolve()), "weight": s.weight} for s in cfg.data]
    values["seq_len"] = cfg.sequence_length
    return values


def check_resumable(cfg: PretrainConfig, saved: dict, checkpoint: Path) -> None:
    """Raise ConfigError naming the first setting that differs from the checkpoint's run."""
    now = trajectory(cfg)
    for name in TRAJECTORY_FIELDS:
        if now[name] != saved.get(name):
            raise ConfigError(
                f"--resume: {name} is {json.dumps(now[name])} but {json.dumps(saved.get(name))} in {checkpoint}; "
                "a resumed run keeps the settings that shape training (or start a new --out)"
            )


def load_pretrain_config(config_file: Path | None, overrides: dict[str, Any]) -> PretrainConfig:
    """Defaults, then the YAML file, then `overrides` (from flags; `model` is merged key by key)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = yaml.safe_load(read_text(config_file, "--config")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{config_file}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{config_file}: expected a mapping of settings, got {type(values).__name__}")
    merged = {**values, **overrides}
    if "model" in overrides and isinstance(values.get("model"), dict):
        merged["model"] = {**values["model"], **overrides["model"]}
    try:
        return PretrainConfig(**merged)
    except ValidationError as err:
        first = err.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, ModelOverrideError):
            raise ConfigError(_where_in_model(cause, overrides, values, config_file)) from None
        key = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            where = f"--{key.replace('_', '-')}" + (f" (or '{key}' in {config_file})" if config_file else "")
            raise ConfigError(f"{where}: required") from None
        if not key:
            raise ConfigError(message) from None
        if key in overrides or config_file is None:
            where = f"--{key.replace('_', '-')}"
        else:
            where = f"{config_file}: key '{key}'"
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        raise ConfigError(f"{where}: {message}") from None


def _where_in_model(
    error: ModelOverrideError, flags: dict[str, Any], file_values: dict[str, Any], config_file: Path | None
) -> str:
    """The error of a model override, named by the flag or the config file's key that set it."""
    from_flags = flags.get("model", {})
    from_file = file_values.get("model") if isinstance(file_values.get("model"), dict) else {}
    if error.key in from_flags:
        return f"--{error.key.replace('_', '-')}: {error.message}"
    if config_file is not None and from_file and (error.key is None or error.key in from_file):
        return f"{config_file}: key 'model{'.' + error.key if error.key else ''}': {error.message}"
    return str(error)  # the whole shape, set by flags and the preset
