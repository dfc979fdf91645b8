"""Programmatic dependent launch (PDL) for the decode step's Triton kernels, on Hopper and later GPUs.

A batch-1 decode step is ~150 kernels of a few µs each, one after another. Launched plainly, a kernel
starts only once its predecessor has finished and its memory is flushed, so every boundary costs the
launch plus the time to get the first loads back. Launched with PDL, a kernel's programs start as soon
as all of its predecessor's have started (each kernel signals `gdc_launch_dependents` first thing) and
run up to `gdc_wait`, which returns once the predecessor has completed. What a kernel does before the
wait may only read memory no earlier kernel of the step writes: for the matvec kernels that is their
first weight tile (and the RoPE angles of the step's positions), so the weights of the next projection
stream in while the current one finishes (the weight-prefetch scheme of CUTLASS's Hopper GEMM example 63). Every kernel that is launched this way
waits before its first dependent read and its first write, which also orders it after everything before
its predecessor. CUDA graphs keep these launches as programmatic edges.

`ENABLED` switches it off for A/B measurements (bench/matvec_throughput.py); it is read at launch, so a
graph keeps the setting it was captured with.
"""

from __future__ import annotations

import functools
import os

import torch

ENABLED = True


@functools.cache
def _hopper_or_later(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] >= 9


def active(tensor: torch.Tensor) -> bool:
    """Whether kernels on `tensor`'s device launch with PDL (never under Triton's CPU interpreter)."""
    if not ENABLED or tensor.device.type != "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return False
    index = tensor.device.index
    return _hopper_or_later(torch.cuda.current_device() if index is None else index)
