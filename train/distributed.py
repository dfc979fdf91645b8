"""One process per GPU under torchrun: process group, device, and wrapping the model (DDP or FSDP2).

Without torchrun's environment a run is a single process (world size 1) and DDP is not applied.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: its rank, the number of processes and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    """`auto`: CUDA when present, else CPU; `cuda` without a CUDA device is an error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA device")
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def single_process(device: str) -> DistEnv:
    """A world of one: this process on `device`."""
    return DistEnv(rank=0, local_rank=0, world_size=1, device=pick_device(device))


def init_distributed(device: str) -> DistEnv:
    """Join torchrun's process group if there is one (NCCL on GPUs, gloo on CPUs), and pick the device."""
    if "RANK" not in os.environ:
        return single_process(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    where = pick_device(device, local_rank)
    if not dist.is_initialized():
        if where.type == "cuda":
            dist.init_process_group(backend="nccl", device_id=where)
        else:
            dist.init_process_group(backend="gloo")
    return DistEnv(rank=rank, local_rank=local_rank, world_size=int(os.environ["WORLD_SIZE"]), device=where)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce(value: torch.Tensor, env: DistEnv, op: str = "sum") -> torch.Tensor:
    """Sum (or average, op="avg") a tensor over the ranks, in place; a no-op for one process."""
    if env.distributed:
        if op == "avg" and dist.get_backend() == "gloo":
            # gloo has no AVG reduction.
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= env.world_size
        else:
            dist.all_reduce(value, op=dist.ReduceOp.AVG if op == "avg" else dist.ReduceOp.SUM)
    return value


def parallelize(model: nn.Module, env: DistEnv, strategy: str, compile: bool, bf16: bool) -> nn.Module:
    """Compile and wrap the model for data parallelism.

    `ddp`: the whole model compiled in place, then DistributedDataParallel (bf16 comes from autocast).
    `fsdp`: FSDP2's `fully_shard` on every block and then the root, each block compiled first, as
    torchtitan does; parameters are gathered in bf16 and gradients reduced in fp32 when `bf16`.
    In-place compilation (`Module.compile`) keeps the state-dict keys free of `_orig_mod.`.
    """
    if strategy == "fsdp":
        if not dist.is_initialized():
            raise ValueError("parallel 'fsdp' shards over torchrun's processes; start the run with torchrun")
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
        )
        kwargs = {"mp_policy": policy} if policy else {}
        for block in model.blocks:
            if compile:
                block.compile()
            fully_shard(block, **kwargs)
        fully_shard(model, **kwargs)
        return model
    if compile:
        model.compile()
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [env.local_rank] if env.device.type == "cuda" else None
        # Gradients as views into the all-reduce buckets: no copy in and out of the buckets each step.
        return DistributedDataParallel(model, device_ids=device_ids, gradient_as_bucket_view=True)
    return model


def gradient_sync(model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel) and not enabled:
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()
