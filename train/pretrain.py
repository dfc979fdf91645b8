"""`train pretrain`: the training loop, read top to bottom.

Set up (process group, seed, resume check) → data (blended, indexed shards) → model (compiled, wrapped
in DDP or FSDP2) → AdamW → optionally restore a checkpoint → steps. A step reads the next global batch
(this rank's slice of it), accumulates gradients over micro-batches, clips and steps. Every `log_every`
steps it logs loss, lr, grad norm, tokens/s and MFU; every `eval_every` the valid loss; every
`ckpt_every` a checkpoint. Resuming restores weights, optimizer, RNG states and the consumed-sample count,
and the learning rate follows from the step: the resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from train.checkpoint import check_position, latest_checkpoint, load_checkpoint, read_state, save_checkpoint
from train.config import ConfigError, PretrainConfig, check_resumable, trajectory
from train.data import build_pretrain_data, load_batch, rank_positions
from train.distributed import (
    DistEnv,
    all_reduce,
    gradient_sync,
    init_distributed,
    parallelize,
    shutdown_distributed,
)
from train.evaluate import evaluate_loss
from train.metrics import MFU_CONVENTION, MetricsLog, flops_per_token, peak_flops, plot_loss_curve
from train.model import Transformer, attention_kernels, count_params
from train.optim import build_optimizer, check_not_diverged, clip_and_step, lr_at


def pretrain(cfg: PretrainConfig, console: Console | None = None) -> dict:
    """Run (or resume) a pretraining run; return the last step, train loss and valid loss."""
    env = init_distributed(cfg.device)
    try:
        return _pretrain(cfg, env, console or Console())
    finally:
        shutdown_distributed()


def _pretrain(cfg: PretrainConfig, env: DistEnv, console: Console) -> dict:
    # --- setup ---------------------------------------------------------------------------------------
    per_round = cfg.micro_batch_size * env.world_size
    if cfg.global_batch_size % per_round:
        raise ConfigError(
            f"--global-batch-size {cfg.global_batch_size} is not divisible by --micro-batch-size "
            f"{cfg.micro_batch_size} × {env.world_size} process(es)"
        )
    accum_steps = cfg.global_batch_size // per_round
    cuda = env.device.type == "cuda"
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
    if bf16 and not cuda:
        raise ConfigError("--precision bf16 is for CUDA devices; use fp32 (or auto) on CPU")
    compile = cuda if cfg.compile is None else cfg.compile
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # same on every rank: identical initial weights

    checkpoints = cfg.out / "checkpoints"
    resume_from = latest_checkpoint(checkpoints)
    saved = None
    if cfg.resume:
        if resume_from is None:
            raise ConfigError(f"--resume: no checkpoint under {checkpoints}")
        saved = read_state(resume_from, "step", "consumed_samples", "trajectory", "tokenizer_sha256")
        check_resumable(cfg, saved["trajectory"], resume_from)
        check_position(resume_from, saved, cfg.global_batch_size)
    elif resume_from is not None:
        raise ConfigError(
            f"--out {cfg.out} already holds checkpoints; pass --resume to continue that run, or pick a new --out"
        )

    # --- data and model ------------------------------------------------------------------------------
    seq_len = cfg.sequence_length
    data = build_pretrain_data(
        cfg.data,
        seq_len,
        cfg.seed,
        cfg.valid_fraction,
        train_samples=cfg.max_steps * cfg.global_batch_size,
        valid_samples=cfg.eval_samples,
        cache_dir=cfg.out / "index_cache",
        expected_tokenizer_sha256=saved["tokenizer_sha256"] if saved else None,
    )
    if data.valid is not None and len(data.valid) < env.world_size:
        # Each rank evaluates its share of the split: with none, the run would log no valid loss at all.
        raise ConfigError(
            f"the valid split holds {len(data.valid)} sample(s), fewer than the {env.world_size} processes "
            "that share it; raise --eval-samples or --valid-fraction, or pass --valid-fraction 0"
        )
    model_cfg = cfg.build_model_config(data.vocab_size)
    model = parallelize(Transformer(model_cfg).to(env.device), env, cfg.parallel, compile, bf16)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), fused=cuda)
    # FSDP2 computes in bf16 through its mixed-precision policy; otherwise autocast does.
    use_autocast = bf16 and cfg.parallel != "fsdp"
    autocast = torch.autocast("cuda", torch.bfloat16) if use_autocast else contextlib.nullcontext()

    step, consumed = 0, 0
    if saved:
        state = load_checkpoint(resume_from, model, optimizer, env)
        step, consumed = state["step"], state["consumed_samples"]

    # --- reporting -------------------------------------------------------------------------------------
    flops = flops_per_token(model_cfg, seq_len)
    peak = _peak(cfg, env)
    tokens_per_step = cfg.global_batch_size * seq_len
    log = None
    if env.is_main:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "config.json").write_text(
            json.dumps({"config": cfg.model_dump(mode="json"), "model": model_cfg.model_dump()}, indent=2)
            + "\n"
        )
        log = MetricsLog(cfg.out / "metrics.jsonl", resume_step=step if saved else None)
        log.write(
            "resume" if saved else "start",
            step=step,
            params=count_params(model_cfg),
            params_non_embedding=count_params(model_cfg, embeddings=False),
            flops_per_token=flops,
            peak_flops=peak[0] if peak else None,
            mfu_convention=MFU_CONVENTION,
            world_size=env.world_size,
            accum_steps=accum_steps,
            tokens_per_step=tokens_per_step,
        )
        console.print(
            f"model {cfg.preset}: {count_params(model_cfg) / 1e6:.1f}M parameters "
            f"({count_params(model_cfg, embeddings=False) / 1e6:.1f}M non-embedding) · vocab "
            f"{data.vocab_size} → {model_cfg.padded_vocab_size} · seq_len {seq_len}"
        )
        console.print(
            f"{env.world_size} process(es) on {env.device.type} · {tokens_per_step:,} tokens/step = "
            f"{cfg.global_batch_size} samples ({cfg.micro_batch_size} × {accum_steps} accumulation × "
            f"{env.world_size}) · {'bf16' if bf16 else 'fp32'} · compile {'on' if compile else 'off'}"
        )
        peak_text = f"peak {peak[0] / 1e12:.0f} TFLOPS ({peak[1]})" if peak else "MFU n/a (no known peak)"
        console.print(f"{MFU_CONVENTION}; {flops / 1e6:.1f} MFLOPs/token; {peak_text}")
        if saved:
            console.print(f"resumed from {resume_from} at step {step} ({consumed:,} samples consumed)")

    # --- training --------------------------------------------------------------------------------------
    stop_step = cfg.stop_after or cfg.max_steps
    last_loss = last_valid = None
    loss_sum = torch.zeros((), device=env.device)
    # Throughput window: steps since the last log line and their wall time, minus evaluation and
    # checkpoint time (`paused`), which is not training.
    window_steps, window_start, paused = 0, time.perf_counter(), 0.0
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
        console=console,
        disable=not (cfg.progress and env.is_main),
    )
    with progress:
        task = progress.add_task("", total=cfg.max_steps, completed=step)
        while step < stop_step:
            lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            positions = rank_positions(consumed, cfg.global_batch_size, env.rank, env.world_size)
            for micro, chunk in enumerate(np.split(positions, accum_steps)):
                batch = load_batch(data.train, chunk, data.vocab_size)
                batch = batch.pin_memory().to(env.device, non_blocking=True) if cuda else batch
                with gradient_sync(model, micro == accum_steps - 1):
                    with autocast, attention_kernels(env.device):
                        loss = model(batch[:, :-1], batch[:, 1:])
                    (loss / accum_steps).backward()
                loss_sum += loss.detach()
            clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = clip_and_step(optimizer, model.parameters(), clip)
            optimizer.zero_grad(set_to_none=True)
            step += 1
            consumed += cfg.global_batch_size
            window_steps += 1

            if step % cfg.log_every == 0 or step == stop_step:
                # Mean loss over the window's steps and all ranks; .item() waits for the GPU, so the
                # window's time covers all of its work.
                mean_loss = all_reduce(loss_sum / (window_steps * accum_steps), env, "avg").item()
                norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
                elapsed = time.perf_counter() - window_start - paused
                check_not_diverged(mean_loss, step)
                tokens_per_s = window_steps * tokens_per_step / elapsed
                mfu = tokens_per_s / env.world_size * flops / peak[0] if peak else None
                last_loss = mean_loss
                record = dict(
                    step=step,
                    loss=mean_loss,
                    lr=lr,
                    grad_norm=norm.item(),
                    tokens_per_s=tokens_per_s,
                    mfu=mfu,
                    consumed_samples=consumed,
                )
                if log:
                    log.write("train", **record)
                    mfu_text = f"MFU {mfu:.1%}" if mfu is not None else "MFU n/a"
                    line = (
                        f"step {step}/{cfg.max_steps} · loss {mean_loss:.4f} · lr {lr:.2e} · "
                        f"grad {record['grad_norm']:.3f} · {tokens_per_s:,.0f} tok/s · {mfu_text}"
                    )
                    progress.console.print(line)
                    progress.update(task, completed=step, description=f"loss {mean_loss:.4f} · {mfu_text}")
                loss_sum.zero_()
                window_steps, window_start, paused = 0, time.perf_counter(), 0.0

            final = step == stop_step
            evaluate = data.valid is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or final)
            save = (cfg.ckpt_every and step % cfg.ckpt_every == 0) or final
            if evaluate or save:
                if cuda:
                    torch.cuda.synchronize()  # queued training kernels belong to the training time
                pause_start = time.perf_counter()
            if evaluate:
                measured = evaluate_loss(
                    model, data.valid, len(data.valid), cfg.micro_batch_size, data.vocab_size, env, autocast
                )
                if measured and log:
                    last_valid = measured[0]
                    log.write(
                        "valid",
                        step=step,
                        loss=last_valid,
                        perplexity=math.exp(last_valid),
                        tokens=measured[1],
                    )
                    progress.console.print(
                        f"step {step}: valid loss {last_valid:.4f} · perplexity {math.exp(last_valid):.2f} "
                        f"({measured[1]:,} tokens)"
                    )
                    plot_loss_curve(log.path, cfg.out / "loss_curve.png")
            if save:
                state = {
                    "consumed_samples": consumed,
                    "trajectory": trajectory(cfg),
                    "config": cfg.model_dump(mode="json"),
                    "model": model_cfg.model_dump(),
                    "tokenizer_sha256": data.tokenizer_sha256,
                    "world_size": env.world_size,
                }
                path = save_checkpoint(
                    checkpoints, step, model, optimizer, state, data.tokenizer_path, env, cfg.keep_checkpoints
                )
                if env.is_main:
                    progress.console.print(f"step {step}: checkpoint {path}")
            if evaluate or save:
                paused += time.perf_counter() - pause_start

    if log:
        log.write("end", step=step, stopped_early=step < cfg.max_steps)
        log.close()
        plot_loss_curve(log.path, cfg.out / "loss_curve.png")
    return {"step": step, "loss": last_loss, "valid_loss": last_valid}


def _peak(cfg: PretrainConfig, env: DistEnv) -> tuple[float, str] | None:
    """The per-GPU peak for MFU: the flag, else the device table; None on CPU."""
    if cfg.peak_tflops:
        return cfg.peak_tflops * 1e12, "--peak-tflops"
    if env.device.type != "cuda":
        return None
    return peak_flops(torch.cuda.get_device_name(env.device))
