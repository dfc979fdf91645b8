"""`curate tokenize INPUT --out DIR (--tokenizer PATH | --vocab-size N)`: shards from an existing dataset.

It writes a two-stage pipeline (`read_parquet` → `tokenize`) to `DIR/tokenize.yaml` and runs it (see
curate.dataset_commands).
"""

from __future__ import annotations

import argparse
import os

from rich.console import Console

from curate.dataset_commands import dataset_pipeline, write_and_run


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
    return dataset_pipeline(args.input, args.out, args.workers, [stage], rejects=False)


def run(args: argparse.Namespace, console: Console) -> int:
    return write_and_run("tokenize", pipeline_for(args), args.out, console)
