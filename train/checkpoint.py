"""Checkpoints that are written atomically and resume a run exactly.

A checkpoint is a directory `<out>/checkpoints/step_0000100/` holding
- `model.safetensors`: the full (unsharded) weights, keyed as in an unwrapped `Transformer`;
- `optimizer.pt`: AdamW's state keyed by parameter name (loads with `torch.load(weights_only=True)`);
- `rng-rank00000.pt`, one per rank: the python, numpy, torch and CUDA generator states;
- `state.json`: step, consumed samples (the data position), the run config, the model config and the
  tokenizer's sha256; and a copy of `tokenizer.json`, so that a checkpoint is usable on its own.
It is written under `.tmp-step_0000100/` and renamed once complete: renaming a directory is atomic, so
a `step_*` directory is always whole, and an interrupted write leaves only a `.tmp-*` directory, which
is ignored and removed by the next save. The learning rate is a function of the step (`optim.lr_at`),
so the scheduler's state is the step itself.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from train.distributed import DistEnv, barrier
from train.model import ModelConfig

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"step_(\d+)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Prefixes that wrappers put in front of parameter names: torch.compile's and DDP's.
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")
# Full (unsharded) state dicts gathered on CPU: the same files from one GPU, DDP or FSDP.
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:07d}"


def latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest step under `root`, or None."""
    found = [p for p in root.glob("step_*") if _STEP_DIR.fullmatch(p.name) and (p / STATE_FILE).is_file()]
    return max(found, key=lambda p: int(p.name.split("_")[1]), default=None)


def is_count(value: object) -> bool:
    # JSON's true and false load as Python bools, which are ints.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def is_object(value: object) -> bool:
    return isinstance(value, dict)


def _is_fraction(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1


# What the values of `state.json` that train reads must be (`a.b`: key b of object a), checked wherever
# they are present, objects before their keys; `model` is checked by `state_model_config`. A value that
# merely looks right ("12", 1.5, true, null) would resume at a wrong step or data position, or fail
# later with a traceback.
_STATE_VALUES = {
    "step": (is_count, "a non-negative integer"),
    "consumed_samples": (is_count, "a non-negative integer"),
    "tokenizer_sha256": (is_sha256, "a sha256 hex digest"),
    "trajectory": (is_object, "a JSON object"),
    "trajectory.seq_len": (lambda v: is_count(v) and v > 0, "a positive integer"),
    "trajectory.seed": (is_count, "a non-negative integer"),
    "trajectory.valid_fraction": (_is_fraction, "a number from 0 up to (not including) 1"),
}
_ABSENT = object()
_Model = TypeVar("_Model", bound=BaseModel)


def read_state(path: Path, *required: str) -> dict:
    """`state.json` of a checkpoint directory; it must hold the keys `required` (`a.b`: key b of object a).

    A hand-edited or damaged file (not JSON, a key missing, a value of the wrong type) is a one-line
    ValueError naming it and the key.
    """
    return read_checked_json(path / STATE_FILE, _STATE_VALUES, required, "the checkpoint")


def read_checked_json(file: Path, values: dict, required: Sequence[str], holder: str) -> dict:
    """The JSON object in `file`, its values at the keys of `values` (`a.b`: key b of object a; objects
    listed before their keys) checked where present, and every key of `required` present.

    Anything else is a one-line ValueError naming `file` and the key, and saying that `holder` (the
    directory the file belongs to: "the checkpoint", "the adapter") is damaged.
    """
    if not file.is_file():
        raise ValueError(f"{file}: missing; {holder} is damaged or was not written by train")
    try:
        loaded = json.loads(file.read_text())
    except ValueError as err:  # not JSON, or not UTF-8
        raise ValueError(f"{file}: not valid JSON ({err}); {holder} is damaged") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(loaded).__name__}; {holder} is damaged")
    for key, (valid, what) in values.items():
        value = _value_at(loaded, key)
        if value is not _ABSENT and not valid(value):
            raise ValueError(f"{file}: {key} must be {what}, not {json.dumps(value)}; {holder} is damaged")
    for key in required:
        if _value_at(loaded, key) is _ABSENT:
            raise ValueError(f"{file}: no '{key}'; {holder} is damaged or was not written by train")
    return loaded


def check_position(path: Path, state: dict, samples_per_step: int) -> None:
    """A ValueError unless the `step` of checkpoint `path`'s state matches its directory name and its
    `consumed_samples` is `step` optimizer steps of `samples_per_step`: a resume from a state that
    disagrees would skip or repeat data."""
    file, step = path / STATE_FILE, state["step"]
    if (named := _STEP_DIR.fullmatch(path.name)) and int(named.group(1)) != step:
        raise ValueError(
            f"{file}: step is {step} but the directory is {path.name}; the checkpoint is damaged"
        )
    if state["consumed_samples"] != step * samples_per_step:
        raise ValueError(
            f"{file}: consumed_samples is {state['consumed_samples']}, not step {step} × global batch "
            f"{samples_per_step} = {step * samples_per_step}; the checkpoint is damaged"
        )


def _value_at(state: dict, key: str) -> object:
    """The value at `key` (`a.b`: key b of object a), or `_ABSENT` where the path does not lead to one."""
    value = state
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def state_model_config(state: dict, path: Path) -> ModelConfig:
    """The model shape that the `state.json` of checkpoint `path` records (read with `read_state(path,
    "model")`); a ValueError naming the file and the field when it is not a valid one."""
    return validated_value(ModelConfig, state, "model", path / STATE_FILE, "the checkpoint")


def validated_value(model: type[_Model], loaded: dict, key: str, file: Path, holder: str) -> _Model:
    """`loaded[key]` (an object read by `read_checked_json`) validated as `model`; a ValueError naming
    `file` and the field (`key.field`) when it is not a valid one, saying that `holder` is damaged."""
    try:
        return model.model_validate(loaded[key])
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join([key, *map(str, first["loc"])])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{file}: {where}: {message}; {holder} is damaged") from None


def save_checkpoint(
    root: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    tokenizer_path: Path,
    env: DistEnv,
    keep: int,
) -> Path:
    """Write the checkpoint of `step` (every rank calls this), then keep only the newest `keep`."""
    final = step_dir(root, step)
    if final.exists():  # resumed from this very step: the state on disk is the state in memory
        return final
    tmp = root / f".tmp-{final.name}"
    # Collective under FSDP: every rank takes part, rank 0 receives the full tensors.
    weights = get_model_state_dict(model, options=_FULL)
    optim_state = get_optimizer_state_dict(model, optimizer, options=_FULL)
    if env.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(env)
    torch.save(capture_rng(), tmp / f"rng-rank{env.rank:05d}.pt")
    if env.is_main:
        save_file({k: v.contiguous() for k, v in weights.items()}, tmp / MODEL_FILE)
        torch.save(optim_state, tmp / OPTIMIZER_FILE)
        shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=2) + "\n")
    barrier(env)
    if env.is_main:
        for path in tmp.iterdir():
            _fsync(path)
        os.rename(tmp, final)
        _fsync(root)
        _prune(root, keep)
    barrier(env)
    return final


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, env: DistEnv) -> dict:
    """Restore weights, optimizer and this rank's RNG states from `path`; return its `state.json`."""
    load_weights(path, model)
    optim_state = _torch_load(path / OPTIMIZER_FILE)
    set_optimizer_state_dict(model, optimizer, optim_state, options=StateDictOptions(full_state_dict=True))
    rng = path / f"rng-rank{env.rank:05d}.pt"
    # A run resumed on more ranks than it was saved with: the new ranks keep their freshly seeded state.
    if rng.is_file():
        restore_rng(_torch_load(rng))
    return read_state(path)


def load_weights(path: Path, model: nn.Module) -> None:
    """Load `model.safetensors` from a checkpoint directory (or the file itself) into `model`, strictly.

    Keys saved from a compiled or DDP-wrapped model (`_orig_mod.`, `module.`) load too.
    """
    file = path / MODEL_FILE if path.is_dir() else path
    weights = strip_wrapper_prefixes(read_safetensors(file))
    # set_model_state_dict reports unexpected keys but leaves missing ones at their random init.
    missing = sorted(set(get_model_state_dict(model)) - set(weights))
    if missing:
        raise ValueError(
            f"{file} lacks {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}: not this model's weights"
        )
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=True))


def read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on CPU; an error naming the file when it is missing or damaged."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist")
    try:
        return load_file(file)
    except SafetensorError as err:
        raise ValueError(f"{file} is not a valid safetensors checkpoint ({err})") from None


def _torch_load(file: Path):
    """A file `torch.save` wrote (tensors and plain containers only); an error naming it when damaged."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    # Damaged bytes fail anywhere in the unpickler (EOFError, KeyError, struct.error, RuntimeError, ...);
    # every failure is re-raised with its type, and the file named.
    except Exception as err:
        why = f"{type(err).__name__}: {str(err).splitlines()[0]}" if str(err) else type(err).__name__
        raise ValueError(f"{file} is damaged: not a file torch.save wrote ({why})") from None


def strip_wrapper_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter names without the prefixes torch.compile and DDP add (anywhere in the name)."""
    cleaned = {}
    for key, value in state_dict.items():
        parts = [p for p in key.split(".") if p + "." not in _WRAPPER_PREFIXES]
        cleaned[".".join(parts)] = value
    return cleaned


def capture_rng() -> dict:
    """Every generator a training step could draw from, in a form `torch.load(weights_only=True)` reads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints, and temp directories of interrupted saves."""
    complete = sorted(
        (p for p in root.glob("step_*") if _STEP_DIR.fullmatch(p.name)),
        key=lambda p: int(p.name.split("_")[1]),
    )
    for old in complete[:-keep]:
        shutil.rmtree(old)
    for stale in root.glob(".tmp-step_*"):
        shutil.rmtree(stale)


def _fsync(path: Path) -> None:
    # A rename is only durable once the renamed files' data and the directory entry are on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
