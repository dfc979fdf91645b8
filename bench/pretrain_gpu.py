"""Pretraining throughput on GPUs: tokens/s and MFU of `train pretrain`'s own loop, and DDP scaling.

    CUDA_VISIBLE_DEVICES=0 python bench/pretrain_gpu.py --accum 2 --json runs/bench/pretrain-1gpu.json
    torchrun --nproc_per_node 2 bench/pretrain_gpu.py --compare runs/bench/pretrain-1gpu.json

It trains the 124m preset (or --preset) through `train.pretrain.pretrain`, so it measures exactly what a
user runs: data loading from shards, bf16 autocast, torch.compile, DDP (or --parallel fsdp). Without
--data it writes synthetic shards under runs/bench/: Zipf-distributed tokens over a --vocab-entry
vocabulary (32,000 by default), so the loss falls as the model learns the unigram distribution and two
runs' loss curves can be compared. The first --warmup steps (compilation, allocator warm-up) are left out
of the numbers; the loop logs (and so waits for the GPU) every --log-every steps, as a real run would.
tokens/s counts every token of every global batch over all GPUs; MFU follows train/metrics.py:
tokens/s/GPU × (6·N + 12·L·d·T) / the GPU's dense bf16 peak. With --compare (the JSON of a 1-GPU run
of the same global batch) it prints the speed-up over that run and the largest difference between the
two loss curves. On a machine without CUDA it prints a message and exits 0.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.shards.format import token_dtype  # noqa: E402
from curate.shards.metadata import PrefixInfo, ShardMetadata, TokenizerInfo  # noqa: E402
from curate.shards.writer import IndexedShardWriter  # noqa: E402
from curate.stages.langid import file_sha256  # noqa: E402

SYNTHETIC_VOCAB = 32_000


def write_synthetic_shards(directory: Path, tokens: int, seed: int = 0, vocab: int = SYNTHETIC_VOCAB) -> Path:
    """Documents of 100–4,000 Zipf-distributed tokens (p(i) ∝ 1/(i + 10), each ending in EOD) and a
    word-level tokenizer of `vocab` entries, so metadata.json tells the truth about the ids."""
    from tokenizers import Tokenizer, models

    if (directory / "metadata.json").is_file():
        return directory
    tmp = directory.with_name(directory.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    eod = vocab - 1
    entries = {f"t{i}": i for i in range(eod)} | {"<|endoftext|>": eod}
    Tokenizer(models.WordLevel(entries, unk_token="t0")).save(str(tmp / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 4000, size=tokens // 2000 + 1)
    weights = 1.0 / (np.arange(eod) + 10.0)
    ids = rng.choice(eod, size=int(lengths.sum()), p=weights / weights.sum())
    ids[np.cumsum(lengths) - 1] = eod  # EOD closes every document
    dtype = token_dtype(vocab)
    prefix = "synthetic_text_document"
    with IndexedShardWriter(tmp / prefix, dtype) as writer:
        writer.add(ids, lengths)
    ShardMetadata(
        created="1970-01-01T00:00:00+00:00",
        tokenizer=TokenizerInfo(
            file="tokenizer.json",
            sha256=file_sha256(tmp / "tokenizer.json"),
            vocab_size=vocab,
            eod_token="<|endoftext|>",
            eod_id=eod,
            pad_token=None,
            pad_id=None,
        ),
        dtype=dtype.name,
        documents=writer.documents,
        tokens=writer.tokens,
        prefixes=[PrefixInfo(prefix=prefix, documents=writer.documents, tokens=writer.tokens)],
    ).write(tmp)
    try:
        os.rename(tmp, directory)
    except OSError:  # another rank published it first
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="124m")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps, warmup included")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the numbers")
    parser.add_argument("--log-every", type=int, default=5, help="steps between log lines (GPU syncs)")
    parser.add_argument("--vocab", type=int, default=SYNTHETIC_VOCAB, help="synthetic shards' vocabulary")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch-size", type=int, default=16)
    parser.add_argument("--accum", type=int, default=1, help="micro-batches per GPU per step")
    parser.add_argument("--data", help="real shard directory (default: synthetic shards)")
    parser.add_argument("--parallel", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=str(REPO / "runs" / "bench" / "pretrain_gpu"))
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--compare", help="JSON of a single-GPU run: print DDP scaling against it")
    parser.add_argument(
        "--attention",
        choices=["cudnn", "flash"],
        default="cudnn",
        help="SDPA backend order: train.model's (cuDNN first) or PyTorch's default (flash first)",
    )
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("bench/pretrain_gpu.py measures GPU training; torch sees no CUDA device here. Nothing to do.")
        return 0
    if args.warmup >= args.steps:
        parser.error(f"--warmup {args.warmup} leaves no measured step of --steps {args.steps}")
    if args.warmup % args.log_every or args.steps % args.log_every:
        parser.error(f"--warmup and --steps must be multiples of --log-every {args.log_every}")

    from rich.console import Console

    import train.model
    import train.pretrain
    from train.config import PretrainConfig
    from train.metrics import read_metrics
    from train.pretrain import pretrain

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    global_batch = args.micro_batch_size * args.accum * world
    if args.data:
        data = Path(args.data)
    else:
        tokens = int(1.2 * args.steps * global_batch * (args.seq_len + 1))
        data = REPO / "runs" / "bench" / f"synthetic-v{args.vocab}-{tokens}"
        if rank == 0:
            write_synthetic_shards(data, tokens, vocab=args.vocab)
        while not (data / "metadata.json").is_file():  # other ranks wait for rank 0's shards
            time.sleep(0.5)
    out = Path(args.out) / f"world{world}"
    if rank == 0:
        shutil.rmtree(out, ignore_errors=True)
    cfg = PretrainConfig(
        data=[str(data)],
        out=out,
        preset=args.preset,
        seq_len=args.seq_len,
        micro_batch_size=args.micro_batch_size,
        global_batch_size=global_batch,
        max_steps=args.steps,
        warmup_steps=min(100, args.steps),
        valid_fraction=0.0,
        log_every=args.log_every,
        ckpt_every=0,
        keep_checkpoints=1,
        compile=args.compile,
        parallel=args.parallel,
        progress=False,
    )
    # A run ends with a checkpoint; the numbers leave its time out, and at 1b it is ~15 GB of writing
    # for nothing: the benchmark's loop saves none.
    train.pretrain.save_checkpoint = lambda *args, **kwargs: None
    if args.attention == "flash":
        from torch.nn.attention import SDPBackend

        train.model.GPU_ATTENTION_BACKENDS = [
            SDPBackend.FLASH_ATTENTION,
            SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.MATH,
        ]
    pretrain(cfg, console=Console(file=io.StringIO()) if rank else None)
    if rank != 0:
        return 0

    train = read_metrics(out / "metrics.jsonl", "train")
    records = [r for r in train if r["step"] > args.warmup]
    start = read_metrics(out / "metrics.jsonl", "start")[0]
    # Each record covers the log_every steps since the previous one.
    tokens = len(records) * args.log_every * start["tokens_per_step"]
    seconds = sum(args.log_every * start["tokens_per_step"] / r["tokens_per_s"] for r in records)
    tokens_per_s = tokens / seconds
    peak = start["peak_flops"]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["torchrun" if "RANK" in os.environ else "python", *sys.argv]),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "world_size": world,
        "preset": args.preset,
        "params": start["params"],
        "parallel": args.parallel,
        "compile": args.compile,
        "attention": args.attention,
        "seq_len": args.seq_len,
        "micro_batch_size": args.micro_batch_size,
        "global_batch_size": global_batch,
        "measured_steps": len(records) * args.log_every,
        "tokens_per_s": tokens_per_s,
        "tokens_per_s_per_gpu": tokens_per_s / world,
        "mfu": tokens_per_s / world * start["flops_per_token"] / peak if peak else None,
        "peak_flops": peak,
        "mfu_convention": start["mfu_convention"],
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "max_memory_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "final_loss": records[-1]["loss"],
        "losses": {str(r["step"]): r["loss"] for r in train},  # str keys: as JSON will read them back
    }
    mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (unknown GPU peak)"
    print(
        f"{result['device']} × {world} · {args.preset} ({start['params'] / 1e6:.0f}M) · {args.parallel} · "
        f"compile {'on' if args.compile else 'off'} · {global_batch} × {args.seq_len} tokens/step"
    )
    print(
        f"{tokens_per_s:,.0f} tokens/s ({tokens_per_s / world:,.0f} per GPU) over {result['measured_steps']} steps · "
        f"MFU {mfu} · max memory {result['max_memory_gib']:.1f} GiB/GPU"
    )
    print(f"({start['mfu_convention']})")
    if args.compare:
        single = json.loads(Path(args.compare).read_text())
        result["speedup"] = result["tokens_per_s"] / single["tokens_per_s"]
        result["scaling_efficiency"] = result["tokens_per_s_per_gpu"] / single["tokens_per_s_per_gpu"]
        steps = sorted(set(result["losses"]) & set(single["losses"]), key=int)
        result["max_loss_difference"] = max(
            (abs(result["losses"][s] - single["losses"][s]) for s in steps), default=float("nan")
        )
        print(
            f"scaling: {world} GPUs give {result['speedup']:.2f}× the tokens/s of {single['world_size']} "
            f"({result['scaling_efficiency']:.0%} efficiency per GPU); loss curves over {len(steps)} log "
            f"points differ by at most {result['max_loss_difference']:.2e}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
