"""`curate tokenize INPUT --out DIR (--tokenizer PATH | --vocab-size N)`: shards from an existing dataset.

It writes a two-stage pipeline (`read_parquet` → `tokenize`) to `DIR/tokenize.yaml` and runs it with the
engine, so the run resumes, reports its funnel and can be repeated with `curate run DIR/tokenize.yaml`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml
from rich.console import Console

from curate.config import load_pipeline


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize", help="tokenize a Parquet/JSONL dataset (a text column) into Megatron .bin/.idx shards"
    )
    parser.add_argument("input", help="Parquet or JSONL files or a glob, e.g. 'output/web/dataset/*.parquet'")
    parser.add_argument("--out", required=True, help="run directory; the shards go to OUT/shards")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer", help="an HF tokenizer.json to use")
    source.add_argument("--vocab-size", type=int, help="train a byte-level BPE with this vocabulary size")
    parser.add_argument("--prefix", help="shard file prefix (default: the tokenize stage's)")
    parser.add_argument("--shard-size", help="most .bin bytes per file, e.g. 500MB (default: 1GB)")
    parser.add_argument("--encoder", choices=["auto", "hf", "tiktoken"], help="default: auto")
    parser.add_argument("--workers", type=int, help="LocalCluster worker processes (default: CPU cores)")
    parser.set_defaults(func=run)


def pipeline_for(args: argparse.Namespace) -> dict:
    """The pipeline that `curate tokenize` runs; options left unset keep the stage's defaults."""
    stage: dict = {"stage": "tokenize"}
    if args.tokenizer:
        stage["tokenizer"] = os.path.abspath(args.tokenizer)
    else:
        stage["train"] = {"vocab_size": args.vocab_size}
    for key in ("prefix", "shard_size", "encoder"):
        if getattr(args, key) is not None:
            stage[key] = getattr(args, key)
    # Absolute paths: the written file must mean the same thing when rerun from another directory.
    return {
        "input": {"paths": [os.path.abspath(args.input)]},
        "output": {"dir": os.path.abspath(args.out)},
        "executor": {"workers": args.workers} if args.workers else {},
        "stages": [{"stage": "read_parquet"}, stage],
    }


def run(args: argparse.Namespace, console: Console) -> int:
    from curate.engine import run_pipeline  # imports dask

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tokenize.yaml"
    header = "# Written by `curate tokenize`; run it again with: curate run " + str(path) + "\n"
    path.write_text(header + yaml.safe_dump(pipeline_for(args), sort_keys=False, allow_unicode=True))
    run_pipeline(load_pipeline(path), console=console)
    return 0
