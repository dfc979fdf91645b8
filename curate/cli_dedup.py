"""`curate dedup INPUT --out DIR [--exact] [--fuzzy] [--verify] [--workers N]`: dedup an existing dataset.

It writes a pipeline (`read_parquet` → `dedup_exact` and/or `dedup_fuzzy` → `write_parquet`) to
`DIR/dedup.yaml` and runs it with the engine, so the run resumes, reports its funnel, keeps the
dropped documents under `DIR/rejects/` and can be repeated or tuned with `curate run DIR/dedup.yaml`.
Neither `--exact` nor `--fuzzy` means both. Documents need an `id` column (curate's datasets have one).
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
        "dedup", help="exact and/or fuzzy (MinHash LSH) dedup of a Parquet/JSONL dataset (id, text columns)"
    )
    parser.add_argument("input", help="Parquet or JSONL files or a glob, e.g. 'output/web/dataset/*.parquet'")
    parser.add_argument(
        "--out", required=True, help="run directory; the deduplicated dataset goes to OUT/dataset"
    )
    parser.add_argument("--exact", action="store_true", help="drop exact duplicates (normalized text hash)")
    parser.add_argument("--fuzzy", action="store_true", help="drop near-duplicates (MinHash LSH)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="fuzzy, checking candidate pairs' exact Jaccard (implies --fuzzy)",
    )
    parser.add_argument("--workers", type=int, help="LocalCluster worker processes (default: CPU cores)")
    parser.set_defaults(func=run)


def pipeline_for(args: argparse.Namespace) -> dict:
    """The pipeline that `curate dedup` runs; options left unset keep the stages' defaults."""
    fuzzy = args.fuzzy or args.verify
    both = not (args.exact or fuzzy)
    stages: list[dict] = [{"stage": "read_parquet"}]
    if args.exact or both:
        stages.append({"stage": "dedup_exact"})
    if fuzzy or both:
        stages.append({"stage": "dedup_fuzzy", "verify": True} if args.verify else {"stage": "dedup_fuzzy"})
    stages.append({"stage": "write_parquet", "path": "dataset"})
    # Absolute paths: the written file must mean the same thing when rerun from another directory.
    return {
        "input": {"paths": [os.path.abspath(args.input)]},
        "output": {"dir": os.path.abspath(args.out), "rejects": True},
        "executor": {"workers": args.workers} if args.workers else {},
        "stages": stages,
    }


def run(args: argparse.Namespace, console: Console) -> int:
    from curate.engine import run_pipeline  # imports dask

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dedup.yaml"
    header = "# Written by `curate dedup`; run it again with: curate run " + str(path) + "\n"
    path.write_text(header + yaml.safe_dump(pipeline_for(args), sort_keys=False, allow_unicode=True))
    run_pipeline(load_pipeline(path), console=console)
    return 0
