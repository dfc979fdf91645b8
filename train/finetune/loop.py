"""`train finetune sft|dpo`: the finetuning loop, read top to bottom.

Base checkpoint → chat format (its tokenizer and template) → rows (SFT: packed conversations; DPO:
preference pairs) and a held-out split → model (every weight trains, or LoRA adapters on a frozen base;
DPO also keeps a frozen copy as its reference) → AdamW and warmup + cosine from `train.optim` → epochs of
seeded shuffles of the rows, `batch_size` rows a step, accumulated over micro-batches → evaluation on the
held-out split before training, every `eval_every` steps and at the end → a checkpoint in the pretrain
layout (full finetuning, or LoRA with `--merge`) and, for LoRA, the adapter alone under `adapter/`.
One process; `metrics.jsonl` and `loss_curve.png` as in pretraining.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from train.checkpoint import load_weights, read_state, state_model_config
from train.config import ConfigError
from train.data import split_documents
from train.distributed import single_process
from train.evaluate import resolve_checkpoint
from train.finetune.chat_template import ChatFormat
from train.finetune.config import FinetuneConfig
from train.finetune.data import read_conversations, read_preferences
from train.finetune.dpo import DPOObjective, build_pairs
from train.finetune.lora import apply_lora, merge_adapter, save_adapter
from train.finetune.save import check_new_run_dir, finetuned_state, save_model_checkpoint
from train.finetune.sft import SFTObjective, build_rows
from train.metrics import MetricsLog, plot_loss_curve
from train.model import Transformer
from train.optim import build_optimizer, check_not_diverged, clip_and_step, lr_at
from train.user_files import read_text


def finetune(cfg: FinetuneConfig, console: Console | None = None) -> dict:
    """Run a finetuning; return the last step, the last logged train loss, the final valid results and
    the paths written (`checkpoint`, `adapter`; None when not written)."""
    console = console or Console()
    # --- setup ---------------------------------------------------------------------------------------
    env = single_process(cfg.device)
    cuda = env.device.type == "cuda"
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
    if bf16 and not cuda:
        raise ConfigError("--precision bf16 is for CUDA devices; use fp32 (or auto) on CPU")
    autocast = torch.autocast("cuda", torch.bfloat16) if bf16 else contextlib.nullcontext()
    check_new_run_dir(cfg.out)
    if (cfg.out / "metrics.jsonl").exists():
        raise ConfigError(f"--out {cfg.out} already holds a run (metrics.jsonl); pick a new --out")
    torch.manual_seed(cfg.seed)  # the LoRA init

    base = resolve_checkpoint(cfg.base)
    # finetuned_state copies the trajectory and tokenizer hash into the new checkpoint.
    base_state = read_state(base, "model", "trajectory", "tokenizer_sha256")
    model_cfg = state_model_config(base_state, base)
    seq_len = cfg.seq_len or model_cfg.max_seq_len
    if seq_len > model_cfg.max_seq_len:
        raise ConfigError(
            f"--seq-len {seq_len} is beyond the base model's max_seq_len {model_cfg.max_seq_len}"
        )
    template = read_text(cfg.chat_template, "--chat-template") if cfg.chat_template else None
    chat = ChatFormat.from_checkpoint(base, template, cfg.eos_token)

    # --- data ----------------------------------------------------------------------------------------
    read = read_conversations if cfg.method == "sft" else read_preferences
    items = read(cfg.data)
    if cfg.valid_data is not None:
        valid_items = read(cfg.valid_data, "--valid-data")
    elif cfg.valid_fraction > 0:
        train_ids, valid_ids = split_documents(len(items), cfg.valid_fraction, cfg.seed)
        items, valid_items = [items[i] for i in train_ids], [items[i] for i in valid_ids]
    else:
        valid_items = []
    if cfg.method == "sft":
        train_rows, truncated = build_rows(chat, items, seq_len, cfg.pack)
        valid_rows, _ = build_rows(chat, valid_items, seq_len, cfg.pack)
    else:
        train_rows, truncated = build_pairs(chat, items, seq_len)
        valid_rows, _ = build_pairs(chat, valid_items, seq_len)

    # --- model -----------------------------------------------------------------------------------------
    model = Transformer(model_cfg)
    load_weights(base, model)
    if cfg.method == "dpo":
        reference = copy.deepcopy(model).requires_grad_(False).eval().to(env.device)
        objective = DPOObjective(reference, cfg.beta, chat.pad_id)
    else:
        objective = SFTObjective(chat.pad_id)
    if cfg.lora is not None:
        apply_lora(model, cfg.lora)
    model.to(env.device)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), fused=cuda)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable, n_params = sum(p.numel() for p in trainable), sum(p.numel() for p in model.parameters())
    micro = cfg.micro_batch_size or cfg.batch_size
    max_steps = cfg.epochs * math.ceil(len(train_rows) / cfg.batch_size)

    # --- reporting -------------------------------------------------------------------------------------
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.json").write_text(
        json.dumps(
            {"config": cfg.model_dump(mode="json"), "base": str(base), "model": model_cfg.model_dump()},
            indent=2,
        )
        + "\n"
    )
    log = MetricsLog(cfg.out / "metrics.jsonl")
    log.write(
        "start",
        method=cfg.method,
        base=str(base),
        params=n_params,
        trainable_params=n_trainable,
        train_examples=len(items),
        valid_examples=len(valid_items),
        train_rows=len(train_rows),
        truncated=truncated,
        seq_len=seq_len,
        max_steps=max_steps,
    )
    how = (
        "full"
        if cfg.lora is None
        else f"LoRA r={cfg.lora.rank} α={cfg.lora.alpha:g} on {','.join(cfg.lora.targets)}"
    )
    console.print(
        f"finetune {cfg.method} ({how}) of {base}: {n_trainable:,} trainable "
        f"of {n_params:,} parameters · {env.device.type} · {'bf16' if bf16 else 'fp32'}"
    )
    console.print(
        f"{len(items)} examples → {len(train_rows)} rows of ≤ {seq_len} tokens "
        f"({'packed' if cfg.method == 'sft' and cfg.pack else 'one example per row'}) · {len(valid_items)} held out "
        f"· {max_steps} steps of {cfg.batch_size} rows"
    )
    if truncated:
        console.print(f"[yellow]{truncated} example(s) longer than {seq_len} tokens were cut short")

    def evaluate(step: int) -> dict | None:
        if not valid_rows:
            return None
        result = _evaluate(model, objective, valid_rows, micro, env.device, autocast)
        log.write("valid", step=step, **result)
        console.print(f"step {step}: valid " + _describe(result))
        return result

    # --- training --------------------------------------------------------------------------------------
    evaluate(0)
    step, consumed, last_loss = 0, 0, None
    window = _Window()
    progress = Progress(
        TextColumn(f"[bold]{cfg.method}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
        console=console,
        disable=not cfg.progress,
    )
    model.train()
    with progress:
        task = progress.add_task("", total=max_steps)
        for epoch in range(cfg.epochs):
            order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_rows))
            for start in range(0, len(order), cfg.batch_size):
                rows = [train_rows[i] for i in order[start : start + cfg.batch_size]]
                lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, max_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                # Every micro-batch's sum over the whole step's weight: the step's mean, however split.
                weight = max(1, sum(objective.weight(r) for r in rows))
                for i in range(0, len(rows), micro):
                    with autocast:
                        loss, stats = objective.loss_sum(model, rows[i : i + micro], env.device)
                    (loss / weight).backward()
                    window.add(loss.detach(), stats)
                clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
                grad_norm = clip_and_step(optimizer, trainable, clip)
                optimizer.zero_grad(set_to_none=True)
                step += 1
                consumed += len(rows)
                window.step(weight, sum(objective.tokens(r) for r in rows))

                if step % cfg.log_every == 0 or step == max_steps:
                    record = window.flush()
                    check_not_diverged(record["loss"], step)
                    last_loss = record["loss"]
                    log.write("train", step=step, lr=lr, grad_norm=grad_norm.item(), **record)
                    line = f"step {step}/{max_steps} · " + _describe(record) + f" · lr {lr:.2e}"
                    progress.console.print(line)
                    progress.update(task, completed=step, description=f"loss {last_loss:.4f}")
                if cfg.eval_every and step % cfg.eval_every == 0 and step < max_steps:
                    evaluate(step)
    last_valid = evaluate(step)

    # --- save ------------------------------------------------------------------------------------------
    state = finetuned_state(base_state, base, cfg.model_dump(mode="json"), consumed)
    checkpoint = adapter = None
    if cfg.lora is None:
        checkpoint = save_model_checkpoint(
            cfg.out, step, model, state, base / "tokenizer.json", chat.config, optimizer
        )
    else:
        adapter = save_adapter(cfg.out / "adapter", model, cfg.lora, state, chat.config, step)
        console.print(f"adapter {adapter}")
        if cfg.merge:
            checkpoint = merge_adapter(adapter, cfg.out)
    if checkpoint is not None:
        console.print(f"checkpoint {checkpoint}")
    log.write("end", step=step)
    log.close()
    plot_loss_curve(log.path, cfg.out / "loss_curve.png")
    return {
        "step": step,
        "loss": last_loss,
        "valid": last_valid,
        "checkpoint": checkpoint,
        "adapter": adapter,
    }


class _Window:
    """Sums over the steps since the last log line: loss, statistics, weight, tokens and time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss, self.stats, self.weight, self.tokens = 0.0, {}, 0, 0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, stats: dict[str, torch.Tensor]) -> None:
        self.loss += loss
        for key, value in stats.items():
            self.stats[key] = self.stats.get(key, 0.0) + value

    def step(self, weight: int, tokens: int) -> None:
        self.weight += weight
        self.tokens += tokens

    def flush(self) -> dict:
        # .item() waits for the device, so the window's time covers all of its work.
        record = {"loss": float(self.loss) / self.weight}
        record.update({k: float(v) / self.weight for k, v in self.stats.items()})
        record["tokens_per_s"] = self.tokens / (time.perf_counter() - self.start)
        self.reset()
        return record


@torch.no_grad()
def _evaluate(model, objective, rows: list, micro: int, device: torch.device, autocast) -> dict:
    """Mean loss (and statistics) of `objective` over `rows`, weighted as in training."""
    model.eval()
    loss, stats, weight = 0.0, {}, 0
    for i in range(0, len(rows), micro):
        with autocast:
            batch_loss, batch_stats = objective.loss_sum(model, rows[i : i + micro], device)
        loss += float(batch_loss)
        for key, value in batch_stats.items():
            stats[key] = stats.get(key, 0.0) + float(value)
        weight += sum(objective.weight(r) for r in rows[i : i + micro])
    model.train()
    result = {"loss": loss / max(weight, 1), **{k: v / max(weight, 1) for k, v in stats.items()}}
    if objective.unit == "tokens":
        result["perplexity"] = math.exp(result["loss"])
    result[objective.unit] = weight
    return result


def _describe(record: dict) -> str:
    parts = [f"loss {record['loss']:.4f}"]
    if "perplexity" in record:
        parts.append(f"perplexity {record['perplexity']:.2f}")
    if "reward_margin" in record:
        parts.append(f"margin {record['reward_margin']:.3f} · accuracy {record['reward_accuracy']:.0%}")
    if "tokens_per_s" in record:
        parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
    return " · ".join(parts)
