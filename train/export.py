"""`train export` and `train import`: checkpoints as Hugging Face Llama directories, and back.

`train.model` is Llama's architecture under other parameter names (RMSNorm, rotate-half RoPE, GQA,
SwiGLU, no biases), and its RoPE already uses HF's rotate-half layout, so q and k need no permutation:
the conversion renames tensors and handles the vocabulary rows. Export trims the token embedding (and an
untied output matrix) from the padded vocabulary to the model's `vocab_size`: the rows past it belong to
no token, and the logits of every real token are unchanged. It writes

- `config.json` (LlamaConfig: `rope_parameters` for transformers 5, `rope_theta` for 4),
- `model.safetensors` (in the checkpoint's dtype, or `--dtype`; a tied model stores the matrix once and
  says `tie_word_embeddings`),
- `tokenizer.json` and `tokenizer_config.json` (special tokens, `model_max_length`, the chat template: the
  checkpoint's, or for a pretrain checkpoint, which has none, the transcript `train serve` chats with),
- `generation_config.json` (bos, eos and pad ids),

which `LlamaForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load offline. Import reads
that layout (or a sharded `model.safetensors.index.json`), refuses what `train.model` cannot compute
(biases, another activation, scaled RoPE, ...), keeps the tensors' dtypes, sets `vocab_size` to HF's and
pads the rows with zeros to the multiple of 128: import → export gives back the same tensors, bit for bit.
Neither direction needs `transformers`; the files are JSON and safetensors.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from curate.file_hash import file_sha256
from train.checkpoint import (
    MODEL_FILE,
    read_safetensors,
    read_state,
    state_model_config,
    strip_wrapper_prefixes,
)
from train.evaluate import resolve_checkpoint
from train.finetune.chat_template import (
    TOKENIZER_CONFIG_FILE,
    TRANSCRIPT_CHAT_TEMPLATE,
    read_tokenizer_config,
    token_text,
)
from train.finetune.save import check_new_run_dir, save_model_checkpoint
from train.model import ModelConfig, Transformer
from train.user_files import check_output_dir

# Our names → HF Llama's, for the model-level tensors and for those of every block.
_GLOBAL_NAMES = {
    "tok_emb.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.wq.weight": "self_attn.q_proj.weight",
    "attn.wk.weight": "self_attn.k_proj.weight",
    "attn.wv.weight": "self_attn.v_proj.weight",
    "attn.wo.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn.w_gate.weight": "mlp.gate_proj.weight",
    "ffn.w_up.weight": "mlp.up_proj.weight",
    "ffn.w_down.weight": "mlp.down_proj.weight",
}
# Tensors with one row per vocabulary entry (padded to a multiple of 128 on our side only).
_VOCAB_ROWS = ("tok_emb.weight", "output.weight")
# config.json keys without a LlamaConfig default that train.model can assume.
_HF_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf_name(name: str) -> str:
    """HF Llama's name for one of our parameters."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if match and match[2] in _BLOCK_NAMES:
        return f"model.layers.{match[1]}.{_BLOCK_NAMES[match[2]]}"
    raise ValueError(f"parameter {name!r} has no Llama counterpart")


def our_name(name: str) -> str:
    """Our name for one of HF Llama's parameters."""
    for ours, theirs in _GLOBAL_NAMES.items():
        if name == theirs:
            return ours
    match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    for ours, theirs in _BLOCK_NAMES.items():
        if match and match[2] == theirs:
            return f"blocks.{match[1]}.{ours}"
    raise ValueError(f"tensor {name!r} is not part of a Llama model that train.model can compute")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def hf_config(cfg: ModelConfig, token_ids: dict[str, int | None], dtype: torch.dtype) -> dict:
    """config.json of the exported model."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "use_cache": True,
        "bos_token_id": token_ids["bos"],
        "eos_token_id": token_ids["eos"],
        "pad_token_id": token_ids["pad"],
        "dtype": _dtype_name(dtype),
        "torch_dtype": _dtype_name(dtype),
    }


def model_config_from_hf(config: dict, source: Path) -> ModelConfig:
    """Our ModelConfig for an HF config.json; a ValueError names what `train.model` cannot compute."""

    def refuse(why: str) -> ValueError:
        return ValueError(f"{source}: {why}; train.model computes plain Llama models only")

    if config.get("model_type") != "llama":
        raise refuse(f"model_type is {config.get('model_type')!r}, not 'llama'")
    missing = [key for key in _HF_REQUIRED if key not in config]
    if missing:
        raise ValueError(f"{source}: lacks {', '.join(missing)}; is it a Llama config.json?")
    if config.get("hidden_act", "silu") != "silu":
        raise refuse(f"hidden_act is {config['hidden_act']!r}, not 'silu'")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise refuse("the model has attention or MLP biases")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise refuse(f"RoPE scaling {rope_type!r}")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    if config.get("head_dim", hidden // heads) * heads != hidden:
        raise refuse(f"head_dim {config['head_dim']} × {heads} heads is not hidden_size {hidden}")
    return ModelConfig(
        vocab_size=config["vocab_size"],
        n_layer=config["num_hidden_layers"],
        d_model=hidden,
        n_head=heads,
        n_kv_head=config.get("num_key_value_heads") or heads,
        ffn_hidden=config["intermediate_size"],
        max_seq_len=config["max_position_embeddings"],
        rope_theta=rope.get("rope_theta", config.get("rope_theta", 10_000.0)),
        # LlamaConfig's defaults where a config.json leaves the key out.
        norm_eps=config.get("rms_norm_eps", 1e-6),
        tie_embeddings=config.get("tie_word_embeddings", False),
        init_std=config.get("initializer_range", 0.02),
    )


def export_checkpoint(
    checkpoint: Path, out: Path, dtype: str | None = None, eos_token: str | None = None
) -> Path:
    """Write checkpoint `checkpoint` (or a run directory's newest) as an HF Llama directory `out`, in
    `dtype` (default: the checkpoint's); `eos_token` names the end token of a checkpoint without a
    tokenizer config (see `chat_template.read_tokenizer_config`)."""
    check_output_dir(out, "--hf")
    checkpoint = resolve_checkpoint(checkpoint)
    cfg = state_model_config(read_state(checkpoint, "model"), checkpoint)
    weights = strip_wrapper_prefixes(read_safetensors(checkpoint / MODEL_FILE))
    with torch.device("meta"):  # names and shapes only, no memory
        expected = {k: v.shape for k, v in Transformer(cfg).state_dict().items()}
    if {k: v.shape for k, v in weights.items()} != expected:
        raise ValueError(
            f"{checkpoint / MODEL_FILE} does not hold the weights of the model in its state.json"
        )
    tensors = {}
    for name, tensor in weights.items():
        if name in _VOCAB_ROWS:
            tensor = tensor[: cfg.vocab_size].clone()
        tensors[hf_name(name)] = tensor.to(DTYPES[dtype]) if dtype else tensor
    out_dtype = tensors["model.embed_tokens.weight"].dtype

    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    tokenizer_config = {
        **read_tokenizer_config(checkpoint, eos_token=eos_token, default_template=TRANSCRIPT_CHAT_TEMPLATE),
        "model_max_length": cfg.max_seq_len,
    }
    token_ids = {}
    for role in ("bos", "eos", "pad"):
        text = token_text(tokenizer_config.get(f"{role}_token"))
        token_ids[role] = None if text is None else tokenizer.token_to_id(text)
    out.mkdir(parents=True, exist_ok=True)
    # transformers refuses safetensors files whose metadata does not say they hold PyTorch tensors.
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    shutil.copyfile(checkpoint / "tokenizer.json", out / "tokenizer.json")
    _write_json(out / TOKENIZER_CONFIG_FILE, tokenizer_config)
    _write_json(out / "config.json", hf_config(cfg, token_ids, out_dtype))
    generation = {
        f"{role}_token_id": token_id for role, token_id in token_ids.items() if token_id is not None
    }
    _write_json(out / "generation_config.json", generation)
    return out


def import_checkpoint(hf_dir: Path, out: Path) -> Path:
    """Write the HF Llama directory `hf_dir` as a checkpoint of a new run directory `out`; return it."""
    check_new_run_dir(out)
    config_file = hf_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} does not exist; is {hf_dir} a Hugging Face model directory?")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as err:  # not JSON, or not UTF-8
        raise ValueError(f"{config_file}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
    cfg = model_config_from_hf(config, config_file)
    if not (hf_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"{hf_dir} has no tokenizer.json; write one with "
            "AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR) (a fast tokenizer)"
        )
    weights = {}
    for name, tensor in _read_hf_weights(hf_dir).items():
        if name.endswith("rotary_emb.inv_freq"):  # a buffer older exports carry; ours is computed
            continue
        if name == "lm_head.weight" and cfg.tie_embeddings:  # tied: the embedding is the one copy
            continue
        weights[our_name(name)] = tensor
    for name in _VOCAB_ROWS:
        if name in weights:
            rows = weights[name]
            padding = rows.new_zeros(cfg.padded_vocab_size - rows.shape[0], rows.shape[1])
            weights[name] = torch.cat([rows, padding])
    with torch.device("meta"):  # no random init: every tensor comes from the file, dtypes as they are
        model = Transformer(cfg)
    try:
        model.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"{hf_dir}: the weights do not match its config.json: {err}") from None

    tokenizer_config = _hf_tokenizer_config(hf_dir, config)
    state = {
        "consumed_samples": 0,
        # No pretraining run: what `train eval` needs (sample length, no held-out split).
        "trajectory": {"seq_len": cfg.max_seq_len, "seed": 0, "valid_fraction": 0.0},
        "config": {"imported_from": str(hf_dir.resolve())},
        "model": cfg.model_dump(),
        "tokenizer_sha256": file_sha256(hf_dir / "tokenizer.json"),
        "world_size": 1,
    }
    return save_model_checkpoint(out, 0, model, state, hf_dir / "tokenizer.json", tokenizer_config)


def _read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or the shards named by model.safetensors.index.json."""
    single, index = hf_dir / "model.safetensors", hf_dir / "model.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single)
    if index.is_file():
        weights = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            weights.update(read_safetensors(hf_dir / shard))
        return weights
    raise FileNotFoundError(
        f"{hf_dir} has no model.safetensors (or index); pickled pytorch_model.bin files are not read, "
        "resave with save_pretrained(DIR, safe_serialization=True)"
    )


def _hf_tokenizer_config(hf_dir: Path, config: dict) -> dict:
    """The HF tokenizer config as it is, its chat template from chat_template.jinja when stored there,
    and bos/eos named from config.json's ids when the tokenizer config leaves them out."""
    path = hf_dir / TOKENIZER_CONFIG_FILE
    tokenizer_config = json.loads(path.read_text()) if path.is_file() else {}
    template = hf_dir / "chat_template.jinja"
    if template.is_file() and "chat_template" not in tokenizer_config:
        tokenizer_config["chat_template"] = template.read_text()
    tokenizer = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    for role in ("bos", "eos"):
        token_id = config.get(f"{role}_token_id")
        if f"{role}_token" not in tokenizer_config and isinstance(token_id, int):
            tokenizer_config[f"{role}_token"] = tokenizer.id_to_token(token_id)
    return tokenizer_config


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
