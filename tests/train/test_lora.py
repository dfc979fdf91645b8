"""LoRA: only the adapters train, merging gives the adapted model's outputs, and a LoRA run saves the
adapter alone and (with --merge) a normal checkpoint that loads like a pretrain one."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.train.finetune_fixtures import INSTRUCTIONS, one_thread, pretrain_base, write_jsonl  # noqa: F401
from tests.train.test_cli import one_line_error
from train.checkpoint import latest_checkpoint, load_weights, read_state
from train.cli import main
from train.data import DataSource
from train.evaluate import evaluate_checkpoint
from train.finetune.data import Example
from train.finetune.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    TARGETS,
    LoRALinear,
    LoRASettings,
    apply_lora,
    load_adapted_model,
    merge_lora,
)
from train.finetune.packing import collate, packed_logits
from train.model import ModelConfig, Transformer, preset_config
from train.optim import build_optimizer


@pytest.fixture(scope="module")
def base(tmp_path_factory, shards):
    return pretrain_base(shards, tmp_path_factory.mktemp("base") / "run")


def tiny_model(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(preset_config("tiny", vocab_size=300, max_seq_len=32))


def adapted(targets: list[str], rank: int = 4) -> Transformer:
    model = tiny_model()
    apply_lora(model, LoRASettings(rank=rank, alpha=8.0, targets=targets))
    return model


@pytest.mark.parametrize("targets", [["q", "v"], list(TARGETS)])
def test_only_the_adapters_are_trainable(targets):
    rank = 4
    model = adapted(targets, rank)
    cfg = model.cfg
    q_out, kv_out = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    shapes = {  # (in, out) of each adaptable layer
        "q": (cfg.d_model, q_out),
        "k": (cfg.d_model, kv_out),
        "v": (cfg.d_model, kv_out),
        "o": (q_out, cfg.d_model),
        "gate": (cfg.d_model, cfg.ffn_hidden),
        "up": (cfg.d_model, cfg.ffn_hidden),
        "down": (cfg.ffn_hidden, cfg.d_model),
    }
    adapters = cfg.n_layer * sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in trainable.values()) == adapters
    assert all(".lora_" in n for n in trainable)
    optimizer = build_optimizer(model, 1e-3, 0.0, (0.9, 0.95), fused=False)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == adapters


def test_a_fresh_adapter_leaves_the_model_unchanged_and_training_moves_only_adapters():
    plain, model = tiny_model(), adapted(["q", "k", "v", "o", "down"])
    idx = torch.randint(0, 300, (2, 16))
    assert torch.equal(plain(idx), model(idx))  # B starts at zero
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = build_optimizer(model, 1e-2, 0.1, (0.9, 0.95), fused=False)
    for _ in range(3):
        model(idx[:, :-1], idx[:, 1:]).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert not torch.equal(plain(idx), model(idx))


def test_merged_weights_give_the_adapted_outputs():
    model = adapted(list(TARGETS))
    for module in model.modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.normal_(module.lora_b, std=0.05)
    model.eval()
    idx = torch.randint(0, 300, (2, 24))
    rows = [[Example(row.tolist(), row.tolist())] for row in idx]
    with torch.no_grad():
        with_adapters = model(idx)  # the fused q/k/v and gate/up read the adapted weights
        called = packed_logits(model, collate(rows, pad_id=0))  # every adapted layer called
        merge_lora(model)
        merged = model(idx)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == set(tiny_model().state_dict())
    assert (with_adapters - merged).abs().max() < 1e-5
    assert (called - merged).abs().max() < 1e-5


def test_lora_run_saves_the_adapter_alone_and_merges_into_a_normal_checkpoint(base, shards, tmp_path):
    base_weights = load_file(base / "model.safetensors")
    data = write_jsonl(tmp_path / "train.jsonl", INSTRUCTIONS)
    out = tmp_path / "lora"
    args = ["finetune", "sft", "--base", str(base), "--data", str(data), "--out", str(out), "--epochs", "3"]
    args += ["--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0.1", "--lora-targets", "q,v,down"]
    args += ["--lr", "1e-2", "--batch-size", "1", "--valid-fraction", "0", "--merge", "--no-progress"]
    assert main(args) == 0

    adapter = out / "adapter"
    assert {p.name for p in adapter.iterdir()} == {ADAPTER_WEIGHTS, ADAPTER_CONFIG, "tokenizer_config.json"}
    weights = load_file(adapter / ADAPTER_WEIGHTS)
    cfg = ModelConfig(**read_state(base)["model"])
    assert len(weights) == 2 * 3 * cfg.n_layer and all(".lora_" in k for k in weights)
    config = json.loads((adapter / ADAPTER_CONFIG).read_text())
    assert config["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.1, "targets": ["q", "v", "down"]}
    assert any(v.abs().max() > 0 for k, v in weights.items() if k.endswith("lora_b"))  # it trained
    base_after = load_file(base / "model.safetensors")
    assert all(torch.equal(base_weights[k], base_after[k]) for k in base_weights)

    checkpoint = latest_checkpoint(out / "checkpoints")
    assert {p.name for p in checkpoint.iterdir()} == {p.name for p in base.iterdir()} | {
        "tokenizer_config.json"
    }
    merged = Transformer(cfg)
    load_weights(checkpoint, merged)  # strict: a plain model's keys, nothing more
    with_adapters, _ = load_adapted_model(adapter)
    idx = torch.randint(0, cfg.vocab_size, (2, 32))
    with torch.no_grad():
        assert (merged.eval()(idx) - with_adapters.eval()(idx)).abs().max() < 1e-5
    (result,) = evaluate_checkpoint(checkpoint, [DataSource(shards)], split="valid", micro_batch_size=2)
    assert result.tokens > 0

    # `train finetune merge` folds a saved adapter later, into the same weights.
    assert main(["finetune", "merge", str(adapter), "--out", str(tmp_path / "merged")]) == 0
    again = load_file(latest_checkpoint(tmp_path / "merged" / "checkpoints") / "model.safetensors")
    first = load_file(checkpoint / "model.safetensors")
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_merge_needs_lora(base, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", INSTRUCTIONS)
    args = f"finetune sft --base {base} --data {data} --out {tmp_path / 'x'} --merge".split()
    assert main(args) == 2
    assert "--lora-rank" in capsys.readouterr().err


def test_merge_of_a_directory_that_is_no_adapter_says_so(base, tmp_path, capsys):
    # A checkpoint is the likely mix-up: the adapter is RUN/adapter, not RUN/checkpoints/step_N.
    assert main(["finetune", "merge", str(base), "--out", str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err
    assert f"{base} is not a LoRA adapter (no adapter_config.json)" in err and "Errno" not in err


def test_merge_of_a_damaged_adapter_config_is_one_line_naming_the_key(base, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", INSTRUCTIONS)
    adapter = tmp_path / "lora" / "adapter"
    args = ["finetune", "sft", "--base", str(base), "--data", str(data), "--out", str(tmp_path / "lora")]
    assert (
        main([*args, "--lora-rank", "2", "--batch-size", "1", "--valid-fraction", "0", "--no-progress"]) == 0
    )
    file = adapter / ADAPTER_CONFIG
    good = json.loads(file.read_text())
    edits = [
        (lambda c: c.update(step="3"), 'step must be a non-negative integer, not "3"'),
        (lambda c: c.pop("lora"), "no 'lora'; the adapter is damaged or was not written by train"),
        (
            lambda c: c["state"].update(base=None),
            "state.base must be a checkpoint directory's path, not null",
        ),
        (lambda c: c["lora"].update(rank=0), "lora.rank: Input should be greater than 0"),
        (lambda c: c["lora"].update(targets=["q", "x"]), "lora.targets: unknown target(s) x; choose from"),
    ]
    for n, (edit, message) in enumerate(edits):
        config = json.loads(json.dumps(good))
        edit(config)
        file.write_text(json.dumps(config))
        err = one_line_error(capsys, ["finetune", "merge", str(adapter), "--out", str(tmp_path / f"m{n}")])
        assert f"{file}: {message}" in err and "damaged" in err, err
    file.write_text(json.dumps(good))
    template_file = adapter / "tokenizer_config.json"
    template_file.write_text(json.dumps({"chat_template": None}))
    err = one_line_error(capsys, ["finetune", "merge", str(adapter), "--out", str(tmp_path / "t1")])
    assert f"{template_file}: chat_template must be a Jinja template, not null" in err, err
    template_file.unlink()
    err = one_line_error(capsys, ["finetune", "merge", str(adapter), "--out", str(tmp_path / "t2")])
    assert f"{template_file}: missing; the adapter is damaged" in err and "Errno" not in err, err
    file.write_text("{")
    assert "not valid JSON" in one_line_error(
        capsys, ["finetune", "merge", str(adapter), "--out", str(tmp_path / "m")]
    )


@pytest.mark.parametrize("targets", ["", "q,,v", "q,"])
def test_an_empty_lora_target_name_is_one_line_naming_the_flag(tmp_path, capsys, targets):
    missing = str(tmp_path / "missing")
    args = ["finetune", "sft", "--base", missing, "--data", missing, "--out", str(tmp_path / "x")]
    assert main([*args, "--lora-rank", "4", "--lora-targets", targets]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "train finetune: error: --lora-targets: an empty target name; "
        f"give a comma-separated list of {','.join(TARGETS)}"
    )
