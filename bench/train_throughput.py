"""Single-GPU training throughput of our model against HF transformers' LlamaForCausalLM of the same shape.

    python bench/train_throughput.py --json runs/bench/throughput.json
    python bench/train_throughput.py --models ours --micro-batch-size 32
    python bench/train_throughput.py --accum 8             # 8 micro-batches per optimizer step
    python bench/train_throughput.py --device cpu          # a quick end-to-end check of the script

Both models train in one loop: random tokens already on the GPU (no data loading, so the model is all
that is measured), bf16 autocast, torch.compile (default mode unless --compile-mode), fused AdamW
with train/optim.py's decay groups, gradient clipping at 1.0, and the same loss (F.cross_entropy over
fp32 logits of every position, inside the compiled region for both). HF's model is built from a
LlamaConfig with our preset's width, depth, heads, kv heads, SwiGLU width, vocabulary, RoPE base and
tied embeddings; the script checks that the two have the same parameter count. Ours runs inside
`train.model.attention_kernels` (cuDNN attention first), as `train pretrain` does; HF's keeps PyTorch's
default SDPA choice, as a user of it gets. The `ours-*` variants (see OURS) change one thing each, for
A/B runs in one process, and joined by + (ours-torch-rope+torch-swiglu) apply together;
--inductor sets torch._inductor.config options for every model. A model that fails is reported, in
the JSON too (written after each model), and the others still run; the exit status is then 1.

A step is --accum micro-batches of --micro-batch-size sequences, each with its backward, then one clip
and optimizer step (--accum > 1 spreads the optimizer over more tokens and adds gradient accumulation,
as train pretrain's --global-batch-size does). Each model runs --warmup steps (compilation) and then
--steps steps timed in windows of --window steps (one GPU sync per window); tokens/s is the median
window. MFU follows train/metrics.py: tokens/s × (6·N + 12·L·d·T) / the GPU's dense bf16 peak
(989 TFLOP/s for H100 SXM and H200). It also times SDPA alone, forward and backward at the model's
attention shape, for each backend, and with --profile N lists the GPU time per kernel over N more
steps. On CPU (--device cpu) it runs the tiny preset for a few steps without compile or autocast: a
check of the script, not a benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import train.model  # noqa: E402
from train.metrics import MFU_CONVENTION, flops_per_token, peak_flops  # noqa: E402
from train.model import ModelConfig, Transformer, attention_kernels, count_params, preset_config  # noqa: E402
from train.optim import build_optimizer, clip_and_step  # noqa: E402

# Our model as `train pretrain` runs it, and variants for A/B runs in one process, each changing one
# thing: the residual stream in fp32 as HF's (ModelConfig.fp32_residual), or kernel modules' switches
# (SWITCHES, at their defaults in every other run, HF's included): a module's ENABLED off for the PyTorch
# code in its place, the output matmul and the loss as two ops, q/k/v head-major in memory, q, k and v
# from one matmul.
KERNEL_SWITCHES = (
    "train.rope_kernels.ENABLED",
    "train.swiglu_kernels.ENABLED",
    "train.cross_entropy_kernels.ENABLED",
)
SWITCHES = {
    **dict.fromkeys(KERNEL_SWITCHES, True),
    "train.cross_entropy_kernels.FUSED_LINEAR": True,
    "train.rope_kernels.TOKEN_MAJOR": True,
    "train.rope_kernels.SEPARATE_V": True,
}
OURS: dict[str, dict] = {
    "ours": {},
    "ours-torch-rope": {"set": {"train.rope_kernels.ENABLED": False}},
    "ours-torch-swiglu": {"set": {"train.swiglu_kernels.ENABLED": False}},
    "ours-torch-ce": {"set": {"train.cross_entropy_kernels.ENABLED": False}},
    "ours-torch": {"set": dict.fromkeys(KERNEL_SWITCHES, False)},
    "ours-fp32-residual": {"config": {"fp32_residual": True}},
    "ours-separate-ce": {"set": {"train.cross_entropy_kernels.FUSED_LINEAR": False}},
    "ours-head-major-qkv": {"set": {"train.rope_kernels.TOKEN_MAJOR": False}},
    "ours-fused-qkv": {"set": {"train.rope_kernels.SEPARATE_V": False}},
}


def variant(name: str) -> dict | None:
    """OURS[name], or for a name joined with "+" (ours-torch-rope+torch-swiglu, each part after the
    first an OURS name less its "ours-") the union of the parts' changes, so that the winners of one A/B
    run are measured together in the next without editing the defaults; None for a name that is neither."""
    first, *rest = name.split("+")
    parts = [first, *(f"ours-{part}" for part in rest)]
    if any(part not in OURS for part in parts):
        return None
    combined: dict[str, dict] = {}
    for part in parts:
        for kind, changes in OURS[part].items():
            target = combined.setdefault(kind, {})
            if clash := [key for key in changes if key in target and target[key] != changes[key]]:
                raise ValueError(f"{name}: {part} sets {', '.join(clash)} otherwise than an earlier part")
            target.update(changes)
    return combined


# --attention: train.model's order (cuDNN first), or PyTorch's own default (flash first), for A/B runs.
ATTENTION_ORDERS = {
    "cudnn": train.model.GPU_ATTENTION_BACKENDS,
    "flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
}


class HFLlamaWithLoss(nn.Module):
    """HF's LlamaForCausalLM of `cfg`'s shape, returning our loss so that both models do the same work."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        hf_cfg = LlamaConfig(
            vocab_size=cfg.padded_vocab_size,
            hidden_size=cfg.d_model,
            intermediate_size=cfg.ffn_hidden,
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_kv_head,
            max_position_embeddings=cfg.max_seq_len,
            rms_norm_eps=cfg.norm_eps,
            rope_theta=cfg.rope_theta,
            tie_word_embeddings=cfg.tie_embeddings,
            initializer_range=cfg.init_std,
            attn_implementation="sdpa",
            use_cache=False,
        )
        self.llama = LlamaForCausalLM(hf_cfg).float()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.llama(input_ids=idx).logits
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def build_model(name: str, cfg: ModelConfig, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    if (changes := variant(name)) is not None:
        model = Transformer(cfg.model_copy(update=changes.get("config", {})))
    else:
        model = HFLlamaWithLoss(cfg)
    params = sum(p.numel() for p in model.parameters())
    if params != count_params(cfg):
        raise RuntimeError(
            f"{name} has {params:,} parameters, the preset {count_params(cfg):,}: not the same shape"
        )
    return model.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, cfg: ModelConfig, args: argparse.Namespace, device: torch.device) -> dict:
    """Train `name` for --warmup + --steps steps; tokens/s is the median over windows of --window steps."""
    cuda = device.type == "cuda"
    changes = variant(name)
    ours = changes is not None
    settings = (changes or {}).get("set", {})
    if unknown := settings.keys() - SWITCHES.keys():
        raise KeyError(f"{name} sets {', '.join(sorted(unknown))}, which SWITCHES does not declare")
    for switch, default in SWITCHES.items():
        module_name, attribute = switch.rsplit(".", 1)
        with contextlib.suppress(ImportError):  # no Triton: no kernel modules, nothing to switch
            module = importlib.import_module(module_name)
            if not hasattr(module, attribute):  # a misspelt switch would make its variant a silent copy
                raise AttributeError(f"SWITCHES: {module_name} has no {attribute}")
            setattr(module, attribute, settings.get(switch, default))
    model = build_model(name, cfg, device)
    if cuda:
        model.compile(mode=args.compile_mode)
    optimizer = build_optimizer(model, lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95), fused=cuda)
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda else contextlib.nullcontext()
    kernels = (lambda: attention_kernels(device)) if ours else contextlib.nullcontext
    generator = torch.Generator(device).manual_seed(1)
    shape = (args.micro_batch_size, args.seq_len + 1)
    batches = [torch.randint(0, cfg.vocab_size, shape, device=device, generator=generator) for _ in range(4)]

    def step(i: int) -> torch.Tensor:
        for micro in range(args.accum):
            batch = batches[(i * args.accum + micro) % len(batches)]
            torch.compiler.cudagraph_mark_step_begin()  # a new step for CUDA-graph modes; a no-op otherwise
            with autocast, kernels():
                loss = model(batch[:, :-1], batch[:, 1:])
            (loss / args.accum).backward()
        clip_and_step(optimizer, model.parameters(), 1.0)
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    first_loss = step(0).item()
    for i in range(1, args.warmup):
        step(i)
    sync(device)
    warmup_s = time.perf_counter() - start
    tokens_per_window = args.window * args.accum * args.micro_batch_size * args.seq_len
    rates = []
    for w in range(args.steps // args.window):
        start = time.perf_counter()
        for i in range(args.window):
            loss = step(args.warmup + w * args.window + i)
        last_loss = loss.item()  # waits for the window's work
        rates.append(tokens_per_window / (time.perf_counter() - start))
    tokens_per_s = statistics.median(rates)
    kernels_table = (
        profile_steps(step, args.warmup + args.steps, args.profile) if cuda and args.profile else None
    )
    peak = peak_flops(torch.cuda.get_device_name(device)) if cuda else None
    result = {
        "model": name,
        "micro_batch_size": args.micro_batch_size,
        "accum": args.accum,
        "seq_len": args.seq_len,
        "params": count_params(cfg),
        "compile_mode": args.compile_mode if cuda else "off",
        "tokens_per_s": tokens_per_s,
        "window_tokens_per_s": rates,
        "mfu": tokens_per_s * flops_per_token(cfg, args.seq_len) / peak[0] if peak else None,
        "warmup_s": warmup_s,
        "max_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "first_loss": first_loss,
        "last_loss": last_loss,
    }
    if kernels_table:
        result["profile"] = kernels_table
    return result


def profile_steps(step, first: int, steps: int) -> list[dict]:
    """GPU time per kernel over `steps` training steps (torch.profiler), the largest first: where a
    step's time goes, for deciding what to speed up next."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            step(first + i)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.self_device_time_total for e in events)
    rows = [
        {
            "kernel": e.key[:120],
            "ms_per_step": e.self_device_time_total / 1e3 / steps,
            "share": e.self_device_time_total / total,
            "calls_per_step": e.count / steps,
        }
        for e in sorted(events, key=lambda e: -e.self_device_time_total)
    ]
    print(f"  GPU time per step {total / 1e3 / steps:.2f} ms; largest kernels:")
    for row in rows[:30]:
        print(
            f"    {row['ms_per_step']:7.3f} ms {row['share']:6.1%} ×{row['calls_per_step']:<5.0f} {row['kernel'][:90]}"
        )
    return rows[:60]


def time_sdpa(cfg: ModelConfig, batch: int, seq_len: int, device: torch.device) -> list[dict]:
    """Causal SDPA forward + backward in bf16 at the model's attention shape, per backend."""
    generator = torch.Generator(device).manual_seed(2)

    def tensor(heads: int) -> torch.Tensor:
        shape = (batch, heads, seq_len, cfg.head_dim)
        x = torch.randn(shape, device=device, dtype=torch.bfloat16, generator=generator)
        return x.requires_grad_()

    q, k, v = tensor(cfg.n_head), tensor(cfg.n_kv_head), tensor(cfg.n_kv_head)
    grad = torch.randn(q.shape, device=device, dtype=torch.bfloat16, generator=generator)
    gqa = cfg.n_kv_head != cfg.n_head
    # Causal: half the 4·T²·hd multiply-adds per head of the forward; the backward does 2.5 times that.
    flops = 3.5 * 4 * batch * cfg.n_head * seq_len**2 * cfg.head_dim / 2
    rows, reference = [], None
    for backend in [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]:
        try:
            with sdpa_kernel(backend):
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
                out.backward(grad)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                for _ in range(3):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).backward(grad)
                start.record()
                for _ in range(20):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).backward(grad)
                end.record()
                torch.cuda.synchronize(device)
        except RuntimeError as error:  # a backend that cannot take these inputs: report, go on
            rows.append({"backend": backend.name, "error": str(error).splitlines()[0][:200]})
            continue
        ms = start.elapsed_time(end) / 20
        out = out.float()
        reference = out if reference is None else reference
        rows.append(
            {
                "backend": backend.name,
                "ms_fwd_bwd": ms,
                "tflops": flops / ms / 1e9,
                "rel_err_vs_flash": ((out - reference).norm() / reference.norm()).item(),
            }
        )
        q.grad = k.grad = v.grad = None
    return rows


def set_inductor_config(parser: argparse.ArgumentParser, settings: list[str]) -> dict:
    """Apply --inductor KEY=VALUE settings (dotted keys reach sub-configs, e.g. triton.cudagraphs)."""
    import ast

    import torch._inductor.config as config

    applied = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parser.error(f"--inductor {setting}: the value must be a Python literal, e.g. {key}=True")
        target, *path = config, *key.split(".")
        for part in path[:-1]:
            target = getattr(target, part, None)
        if not sep or target is None or not hasattr(target, path[-1]):
            parser.error(f"--inductor {setting}: torch._inductor.config has no {key!r}")
        setattr(target, path[-1], value)
        applied[key] = value
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        default="hf,ours",
        help=f"comma-separated, run in this order: hf, {', '.join(OURS)}, or variants joined by + "
        "(ours-torch-rope+torch-swiglu: both changes)",
    )
    parser.add_argument("--preset", default="124m")
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch-size", type=int, default=16)
    parser.add_argument("--accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--warmup", type=int, default=8, help="untimed first steps (compilation)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps after the warmup")
    parser.add_argument("--window", type=int, default=10, help="timed steps per GPU sync")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode (default: PyTorch's)")
    parser.add_argument(
        "--inductor",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set torch._inductor.config.KEY (a Python literal) for every model, e.g. coordinate_descent_tuning=True",
    )
    parser.add_argument(
        "--attention", choices=list(ATTENTION_ORDERS), default="cudnn", help="our SDPA backend order on GPU"
    )
    parser.add_argument("--no-sdpa", action="store_true", help="skip timing SDPA's backends alone")
    parser.add_argument("--profile", type=int, default=0, help="after timing, profile N steps' kernels")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.accum < 1:
        parser.error(f"--accum {args.accum}: a step needs at least one micro-batch")
    if args.steps < args.window:
        parser.error(f"--steps {args.steps} is fewer than one --window of {args.window}")
    try:
        unknown = [m for m in args.models.split(",") if m != "hf" and variant(m) is None]
    except ValueError as error:
        parser.error(f"--models: {error}")
    if unknown:
        parser.error(
            f"--models: unknown {', '.join(unknown)}; choose from hf, {', '.join(OURS)}, or join variants "
            "with + (ours-torch-rope+torch-swiglu)"
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch sees no CUDA device; use --device cpu for a check of the script.")
        return 0
    device = torch.device(args.device)
    inductor = set_inductor_config(parser, args.inductor)
    train.model.GPU_ATTENTION_BACKENDS = ATTENTION_ORDERS[args.attention]
    if device.type == "cpu":
        args.preset, args.seq_len, args.micro_batch_size = "tiny", 64, 2
    cfg = preset_config(args.preset, args.vocab)
    if args.seq_len > cfg.max_seq_len:
        parser.error(
            f"--seq-len {args.seq_len} exceeds the {args.preset} preset's max_seq_len {cfg.max_seq_len}"
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{name} · {args.preset} ({count_params(cfg) / 1e6:.1f}M, vocab {cfg.vocab_size}) · "
        f"{args.micro_batch_size} × {args.seq_len} tokens × {args.accum} micro-batches/step · "
        f"torch {torch.__version__}"
    )
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python", *sys.argv]),
        "device": name,
        "torch": torch.__version__,
        "preset": args.preset,
        "attention": args.attention,
        "inductor_config": inductor,
        "mfu_convention": MFU_CONVENTION,
        "flops_per_token": flops_per_token(cfg, args.seq_len),
        "runs": [],
    }
    if device.type == "cuda" and not args.no_sdpa:
        report["sdpa"] = time_sdpa(cfg, args.micro_batch_size, args.seq_len, device)
        for row in report["sdpa"]:
            detail = row.get("error") or (
                f"{row['ms_fwd_bwd']:.2f} ms fwd+bwd · {row['tflops']:.0f} TFLOP/s · "
                f"rel err vs flash {row['rel_err_vs_flash']:.1e}"
            )
            print(f"  SDPA {row['backend']:<20} {detail}")
    models = args.models.split(",")
    width = max(map(len, models))
    for model_name in models:
        try:
            result = measure(model_name, cfg, args, device)
        except Exception as error:  # one variant failing (a kernel, out of memory) leaves the others' figures
            traceback.print_exc()
            result = {"model": model_name, "error": f"{type(error).__name__}: {str(error)[:500]}"}
        # The next model starts from a clean slate: no compiled graphs, no cached blocks of this one.
        gc.collect()
        torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report["runs"].append(result)
        if "error" in result:
            print(f"  {model_name:<{width}} failed: {result['error'].splitlines()[0][:200]}")
        else:
            mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a"
            memory = f"{result['max_memory_gib']:.1f} GiB" if result["max_memory_gib"] is not None else "n/a"
            print(
                f"  {model_name:<{width}} {result['tokens_per_s']:>11,.0f} tokens/s · MFU {mfu} · warmup "
                f"{result['warmup_s']:.0f} s · max memory {memory} · loss {result['first_loss']:.3f} → "
                f"{result['last_loss']:.3f}"
            )
        write_report(report, args.json)  # after each model: a run stopped by its time limit keeps the rest
    rates = {r["model"]: r["tokens_per_s"] for r in report["runs"] if "error" not in r}
    if "hf" in rates:
        report["over_hf"] = {model: rate / rates["hf"] for model, rate in rates.items() if model != "hf"}
        for model, ratio in report["over_hf"].items():
            print(f"  {model:<{width}} / HF: {ratio:.3f}×")
    write_report(report, args.json)
    return 1 if any("error" in r for r in report["runs"]) else 0


def write_report(report: dict, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
