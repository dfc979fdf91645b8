"""LoRA: trainable low-rank adapters on chosen linear layers of a frozen model (Hu et al., 2021).

A target layer y = x W₀ᵀ becomes y = x W₀ᵀ + (α/r) · dropout(x) Aᵀ Bᵀ, with A [r, in] Kaiming-uniform
(as PEFT) and B [out, r] zero, so training starts exactly at the base model. Only A and B train; the
adapted model's parameters are `….base_weight` (frozen W₀), `….lora_a` and `….lora_b`.

An adapter is saved alone: `adapter_model.safetensors` (A and B), `adapter_config.json` (the settings,
the `state.json` a merge writes, which names the base checkpoint) and the chat template's
`tokenizer_config.json`. Merging folds W₀ + (α/r)·B A into plain layers and writes a normal checkpoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from safetensors.torch import save_file
from torch import nn

from curate.part_files import atomic_write_text
from train.checkpoint import (
    is_count,
    is_object,
    is_sha256,
    is_text,
    load_weights,
    read_checked_json,
    read_safetensors,
    read_state,
    state_model_config,
    validated_value,
)
from train.finetune.chat_template import TOKENIZER_CONFIG_FILE, write_tokenizer_config
from train.finetune.save import check_new_run_dir, save_model_checkpoint
from train.model import Transformer

# Target names → the layers of a `train.model.Block` they adapt.
TARGETS = {
    "q": ("attn", "wq"),
    "k": ("attn", "wk"),
    "v": ("attn", "wv"),
    "o": ("attn", "wo"),
    "gate": ("ffn", "w_gate"),
    "up": ("ffn", "w_up"),
    "down": ("ffn", "w_down"),
}
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# What the values of `adapter_config.json` must be; `lora` is then checked by `LoRASettings`.
_ADAPTER_VALUES = {
    "lora": (is_object, "a JSON object"),
    "step": (is_count, "a non-negative integer"),
    "state": (is_object, "a JSON object"),
    "state.base": (is_text, "a checkpoint directory's path"),
    "state.tokenizer_sha256": (is_sha256, "a sha256 hex digest"),
}


def known_targets(value: list[str]) -> list[str]:
    """`value` if every name in it is a key of TARGETS (a pydantic validator: a ValueError says which is not)."""
    if "" in value:  # "", "q,,v" or "q,": a name left out
        raise ValueError(f"an empty target name; give a comma-separated list of {','.join(TARGETS)}")
    unknown = [t for t in value if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; choose from {','.join(TARGETS)}")
    return value


Targets = Annotated[list[str], AfterValidator(known_targets)]


class LoRASettings(BaseModel):
    """Shape of the adapters."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rank: int = Field(gt=0, description="Rank r of B A.")
    alpha: float = Field(gt=0, description="The update is scaled by alpha / rank.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter branch's input.")
    targets: Targets = Field(min_length=1, description="Layers adapted in every block (keys of TARGETS).")


class LoRALinear(nn.Module):
    """A frozen bias-free linear layer plus a trainable low-rank update.

    train.model uses a layer in two ways, and both see the update: calling it, and reading its `weight`
    (the fused q/k/v and gate/up matmuls of `Attention` and `SwiGLU` read the weights of their layers).
    `weight` is W₀ + (α/r)·B A; a call computes the same without forming it, plus the input dropout.
    Dropout therefore acts only through calls: the finetuning forward (`packing.packed_logits`) calls
    every layer, and out of training (eval mode) the two ways agree exactly.
    """

    def __init__(self, base: nn.Linear, settings: LoRASettings) -> None:
        super().__init__()
        if base.bias is not None:
            raise ValueError("LoRA here adapts bias-free linear layers, as train.model's are")
        self.base_weight = base.weight  # the base's Parameter itself, frozen: no copy
        self.base_weight.requires_grad_(False)
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_a = nn.Parameter(torch.empty(settings.rank, base.in_features, **factory))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, settings.rank, **factory))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scaling = settings.alpha / settings.rank
        self.dropout = nn.Dropout(settings.dropout)

    @property
    def weight(self) -> torch.Tensor:
        return self.base_weight + self.scaling * (self.lora_b @ self.lora_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b)
        return F.linear(x, self.base_weight) + update * self.scaling

    def merged(self) -> nn.Linear:
        """A plain linear layer with weight W₀ + (α/r)·B A."""
        out_features, in_features = self.base_weight.shape
        factory = dict(device=self.base_weight.device, dtype=self.base_weight.dtype)
        linear = nn.Linear(in_features, out_features, bias=False, **factory)
        with torch.no_grad():
            linear.weight.copy_(self.weight)
        return linear


def _target_layers(model: Transformer, targets: list[str]):
    for block in model.blocks:
        for target in targets:
            parent, name = TARGETS[target]
            yield getattr(block, parent), name


def apply_lora(model: Transformer, settings: LoRASettings) -> None:
    """Freeze every weight of `model` and put adapters on the target layers of every block."""
    model.requires_grad_(False)
    for parent, name in _target_layers(model, settings.targets):
        setattr(parent, name, LoRALinear(getattr(parent, name), settings))


def merge_lora(model: Transformer) -> None:
    """Fold every adapter into its layer: `model` becomes a plain Transformer again, all trainable."""
    for parent, name in _target_layers(model, list(TARGETS)):
        layer = getattr(parent, name)
        if isinstance(layer, LoRALinear):
            setattr(parent, name, layer.merged())
    model.requires_grad_(True)


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' tensors, by their names in the model."""
    return {k: v for k, v in model.state_dict().items() if ".lora_" in k}


def save_adapter(
    directory: Path,
    model: Transformer,
    settings: LoRASettings,
    state: dict,
    tokenizer_config: dict,
    step: int,
) -> Path:
    """Write the adapters of `model` to `directory`; `state` is the `state.json` a merge will write
    (see `save.finetuned_state`: it names the base checkpoint)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in adapter_state_dict(model).items()}
    save_file(weights, directory / ADAPTER_WEIGHTS)
    config = {"lora": settings.model_dump(), "step": step, "state": state}
    atomic_write_text(directory / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
    write_tokenizer_config(directory, tokenizer_config)
    return directory


def read_adapter_config(adapter_dir: Path) -> tuple[dict, LoRASettings]:
    """`adapter_config.json` of a saved adapter and its LoRA settings; a hand-edited or damaged file is a
    one-line ValueError naming it and the key."""
    file = adapter_dir / ADAPTER_CONFIG
    config = read_checked_json(
        file, _ADAPTER_VALUES, ["lora", "step", "state.base", "state.tokenizer_sha256"], "the adapter"
    )
    return config, validated_value(LoRASettings, config, "lora", file, "the adapter")


def load_adapted_model(adapter_dir: Path) -> tuple[Transformer, dict]:
    """The base model of a saved adapter with the adapter applied, and the adapter's config."""
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(
            f"{adapter_dir} is not a LoRA adapter (no {ADAPTER_CONFIG}); give the adapter/ of a --lora-rank run"
        )
    config, settings = read_adapter_config(adapter_dir)
    base = Path(config["state"]["base"])
    if not (base / "state.json").is_file():
        raise FileNotFoundError(f"{adapter_dir}: its base checkpoint {base} is not there any more")
    state = read_state(base, "model", "tokenizer_sha256")
    if state["tokenizer_sha256"] != config["state"]["tokenizer_sha256"]:
        raise ValueError(f"{adapter_dir}: the checkpoint at {base} is not the one the adapter was trained on")
    model = Transformer(state_model_config(state, base))
    load_weights(base, model)
    apply_lora(model, settings)
    weights = read_safetensors(adapter_dir / ADAPTER_WEIGHTS)
    if set(weights) != set(adapter_state_dict(model)):
        raise ValueError(f"{adapter_dir / ADAPTER_WEIGHTS} does not hold the adapters its config describes")
    model.load_state_dict(weights, strict=False)
    return model, config


def merge_adapter(adapter_dir: Path, out: Path) -> Path:
    """Fold a saved adapter into its base and write the result as a normal checkpoint under `out`."""
    check_new_run_dir(out)
    model, config = load_adapted_model(adapter_dir)
    merge_lora(model)
    state = {**config["state"], "adapter": str(adapter_dir.resolve())}
    # The chat template the adapter was trained with; the merged checkpoint must serve with the same.
    template = {"chat_template": (is_text, "a Jinja template")}
    tokenizer_config = read_checked_json(
        adapter_dir / TOKENIZER_CONFIG_FILE, template, ["chat_template"], "the adapter"
    )
    tokenizer_json = Path(config["state"]["base"]) / "tokenizer.json"
    return save_model_checkpoint(out, config["step"], model, state, tokenizer_json, tokenizer_config)
