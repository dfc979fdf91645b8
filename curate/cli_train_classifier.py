"""`curate train-classifier`: train the fastText quality model that the `classifier` stage reads.

    curate train-classifier --data labeled.jsonl --out models/quality.bin
    curate train-classifier --positive output/web/dataset --negative output/web/rejects/fineweb \\
        --out models/quality.ftz --quantize

Flags after the inputs come from `curate.quality_model.TrainConfig`, with its defaults and help.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from curate.cli import print_error
from curate.quality_model import LABELS, TrainConfig, TrainingDataError, load_examples, metrics_path, train


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-classifier",
        help="train a fastText quality model (hq vs lq) and evaluate it on a held-out split",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--data", action="append", default=[], metavar="PATH", help='labeled JSONL {"text", "label": hq|lq}'
    )
    parser.add_argument(
        "--positive",
        action="append",
        default=[],
        metavar="PATH",
        help="hq documents (Parquet/JSONL with text)",
    )
    parser.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="PATH",
        help="lq documents (Parquet/JSONL with text)",
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="model file; metrics go beside it as <name>.metrics.json"
    )
    for name, info in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if info.annotation is bool:
            parser.add_argument(flag, action="store_true", help=info.description)
        else:
            parser.add_argument(
                flag,
                type=info.annotation,
                default=info.default,
                help=f"{info.description.rstrip('.')} (default {info.default}).",
            )
    parser.epilog = (
        "PATH is a file, a directory (searched for .parquet/.jsonl/.jsonl.gz) or a glob; repeatable."
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> int:
    if not args.data and not (args.positive and args.negative):
        print_error(console, "give --data, or both --positive and --negative")
        return 2
    try:
        config = TrainConfig(**{name: getattr(args, name) for name in TrainConfig.model_fields})
    except ValidationError as err:
        first = err.errors()[0]
        print_error(console, f"--{first['loc'][0].replace('_', '-')}: {first['msg']}")
        return 2
    if (problem := _out_problem(args.out)) is not None:
        print_error(console, f"--out {args.out}: {problem}")
        return 2
    try:
        examples = load_examples(args.data, args.positive, args.negative)
        report = train(examples, args.out, config)
    except TrainingDataError as err:
        print_error(console, err)
        return 2
    train_counts = report["train"]
    console.print(
        f"trained on {train_counts['documents']} documents "
        f"({', '.join(f'{label} {train_counts[label]}' for label in LABELS)}); "
        f"skipped: {report['skipped'] or 'none'}"
    )
    valid = report["valid"]
    if not valid["documents"]:
        console.print("[yellow]held-out split is empty: no metrics (more data or a larger --valid-fraction)")
    else:
        table = Table(title=f"held-out: {valid['documents']} documents, P(hq) >= {report['threshold']}")
        for column in ("class", "precision", "recall", "F1", "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for label in LABELS:
            row = valid[label]
            table.add_row(label, *(_fmt(row[k]) for k in ("precision", "recall", "f1")), str(row["support"]))
        console.print(table)
        console.print(f"accuracy {_fmt(valid['accuracy'])}")
    console.print(
        f"model: {escape(str(args.out))} ({args.out.stat().st_size:,} bytes) · "
        f"metrics: {escape(str(metrics_path(args.out)))}"
    )
    return 0


def _out_problem(out: Path) -> str | None:
    """Why the model cannot be written at `out` (checked before the data is read), or None."""
    if out.is_dir():
        return f"is a directory; name the model file, e.g. {out / 'quality.bin'}"
    existing = next(p for p in out.absolute().parents if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a directory; choose another path"
    return None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
