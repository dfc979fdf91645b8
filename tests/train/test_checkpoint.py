"""Checkpoints: compiled/DDP keys load into a plain model, writes are atomic, RNG and pruning."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curate.stages.langid import file_sha256
from tests.train.test_cli import one_line_error
from train import checkpoint as ckpt
from train.distributed import single_process
from train.model import Transformer, preset_config
from train.optim import build_optimizer

ENV = single_process("cpu")


def tiny_model(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(preset_config("tiny", vocab_size=300, max_seq_len=32))


def trained_pair(seed: int = 0) -> tuple[Transformer, torch.optim.Optimizer]:
    model = tiny_model(seed)
    optimizer = build_optimizer(model, 1e-3, 0.1, (0.9, 0.95), fused=False)
    idx = torch.randint(0, 300, (2, 16))
    model(idx, idx).backward()
    optimizer.step()
    return model, optimizer


def test_weights_of_a_compiled_or_ddp_model_load_into_a_plain_one(tmp_path):
    source = tiny_model(seed=1)
    compiled = torch.compile(source)  # wraps: state-dict keys gain `_orig_mod.`
    keys = list(compiled.state_dict())
    assert all(k.startswith("_orig_mod.") for k in keys)
    save_file(dict(compiled.state_dict()), tmp_path / "compiled.safetensors")
    save_file({"module." + k: v for k, v in source.state_dict().items()}, tmp_path / "ddp.safetensors")
    for name in ("compiled", "ddp"):
        target = tiny_model(seed=2)
        ckpt.load_weights(tmp_path / f"{name}.safetensors", target)
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key


def test_loading_is_strict_about_missing_weights(tmp_path):
    weights = dict(tiny_model().state_dict())
    weights.pop("norm.weight")
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="lacks norm.weight"):
        ckpt.load_weights(tmp_path / "model.safetensors", tiny_model())


def save(root, step, model, optimizer, tokenizer_file, keep=3):
    state = {"consumed_samples": step * 8}
    return ckpt.save_checkpoint(root, step, model, optimizer, state, tokenizer_file, ENV, keep)


def test_checkpoint_round_trip_restores_model_optimizer_and_state(tmp_path, tokenizer_file):
    model, optimizer = trained_pair()
    path = save(tmp_path, 5, model, optimizer, tokenizer_file)
    assert sorted(p.name for p in path.iterdir()) == [
        "model.safetensors",
        "optimizer.pt",
        "rng-rank00000.pt",
        "state.json",
        "tokenizer.json",
    ]
    fresh = tiny_model(seed=9)
    fresh_opt = build_optimizer(fresh, 1e-3, 0.1, (0.9, 0.95), fused=False)
    state = ckpt.load_checkpoint(path, fresh, fresh_opt, ENV)
    assert state == {"step": 5, "consumed_samples": 40}
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(optimizer.state[p][key], fresh_opt.state[q][key])


@pytest.mark.parametrize(
    ("file", "junk", "message"),
    [
        ("model.safetensors", b"junk", "is not a valid safetensors checkpoint (Error while"),
        ("optimizer.pt", b"junk", "optimizer.pt is damaged: not a file torch.save wrote"),
        ("rng-rank00000.pt", b"", "rng-rank00000.pt is damaged: not a file torch.save wrote"),
        ("state.json", b'{"step": 5,', "state.json: not valid JSON"),
        ("state.json", b"[5]", "state.json: expected a JSON object, got list"),
    ],
)
def test_a_damaged_checkpoint_file_is_an_error_naming_it(tmp_path, tokenizer_file, file, junk, message):
    model, optimizer = trained_pair()
    path = save(tmp_path, 5, model, optimizer, tokenizer_file)
    (path / file).write_bytes(junk)
    with pytest.raises(
        ValueError, match="the checkpoint is damaged$" if file == "state.json" else None
    ) as err:
        fresh = tiny_model()
        ckpt.read_state(path)
        ckpt.load_checkpoint(path, fresh, build_optimizer(fresh, 1e-3, 0.1, (0.9, 0.95), fused=False), ENV)
    assert str(path / file) in str(err.value) and message in str(err.value)


def test_an_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, tokenizer_file, monkeypatch):
    model, optimizer = trained_pair()
    first = save(tmp_path, 1, model, optimizer, tokenizer_file)
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    def dies_mid_write(obj, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ckpt.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path, 2, model, optimizer, tokenizer_file)
    monkeypatch.undo()

    assert (tmp_path / ".tmp-step_0000002").is_dir()  # the partial write, never renamed
    assert not (tmp_path / "step_0000002").exists()
    assert ckpt.latest_checkpoint(tmp_path) == first
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    restored = tiny_model()
    state = ckpt.load_checkpoint(
        first, restored, build_optimizer(restored, 1e-3, 0.1, (0.9, 0.95), False), ENV
    )
    assert state["consumed_samples"] == 8
    for got, want in zip(restored.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(got, want)

    third = save(tmp_path, 3, model, optimizer, tokenizer_file)
    assert ckpt.latest_checkpoint(tmp_path) == third
    assert not (tmp_path / ".tmp-step_0000002").exists()  # the next save clears the leftovers


def test_only_the_newest_checkpoints_are_kept(tmp_path, tokenizer_file):
    model, optimizer = trained_pair()
    for step in (10, 20, 30, 100):
        save(tmp_path, step, model, optimizer, tokenizer_file, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000030", "step_0000100"]


def test_rng_states_round_trip():
    state = ckpt.capture_rng()
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)
    ckpt.restore_rng(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[0] == again[0] and drawn[1] == again[1] and torch.equal(drawn[2], again[2])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("model"), "no 'model'"),
        (lambda s: s["trajectory"].pop("seed"), "no 'trajectory.seed'"),
        (lambda s: s["model"].update(n_layer=0), "model.n_layer: Input should be greater than 0"),
        (lambda s: s["model"].update(n_kv_head=3), "model: n_head 4 is not divisible by n_kv_head 3"),
        (lambda s: s.update(model="tiny"), "model: Input should be a valid dictionary"),
    ],
)
def test_a_hand_edited_state_json_is_one_line_naming_it(
    capsys, tmp_path, shards, tokenizer_file, edit, message
):
    model, optimizer = trained_pair()
    path = save(tmp_path, 5, model, optimizer, tokenizer_file)
    state = json.loads((path / "state.json").read_text())
    trajectory = {"seq_len": 32, "seed": 0, "valid_fraction": 0.0}
    state.update(
        model=model.cfg.model_dump(), trajectory=trajectory, tokenizer_sha256=file_sha256(tokenizer_file)
    )
    edit(state)
    (path / "state.json").write_text(json.dumps(state))
    for argv in (
        ["eval", str(path), "--data", str(shards)],
        ["generate", "--checkpoint", str(path), "--prompt", "The cat"],
        ["export", "--checkpoint", str(path), "--hf", str(tmp_path / "hf")],
    ):
        if "trajectory" in message and argv[0] != "eval":
            continue  # only eval reads the pretraining run's settings
        assert f"{path / 'state.json'}: {message}" in one_line_error(capsys, argv), argv
