"""`curate dedup INPUT --out DIR [--exact] [--fuzzy] [--verify] [--workers N]`: dedup an existing dataset.

It writes a pipeline (`read_parquet` → `dedup_exact` and/or `dedup_fuzzy` → `write_parquet`) to
`DIR/dedup.yaml` and runs it (see curate.dataset_commands); dropped documents go to `DIR/rejects/`.
Neither `--exact` nor `--fuzzy` means both. Documents need an `id` column (curate's datasets have one).
"""

from __future__ import annotations

import argparse

from rich.console import Console

from curate.dataset_commands import dataset_pipeline, write_and_run


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
    stages: list[dict] = []
    if args.exact or both:
        stages.append({"stage": "dedup_exact"})
    if fuzzy or both:
        stages.append({"stage": "dedup_fuzzy", "verify": True} if args.verify else {"stage": "dedup_fuzzy"})
    stages.append({"stage": "write_parquet", "path": "dataset"})
    return dataset_pipeline(args.input, args.out, args.workers, stages, rejects=True)


def run(args: argparse.Namespace, console: Console) -> int:
    return write_and_run("dedup", pipeline_for(args), args.out, console)
