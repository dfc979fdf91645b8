"""`curate inspect SHARD_DIR`: what a shard directory holds, after validating all of it.

Prints the tokenizer and its hash, documents and tokens per prefix, a histogram of tokens per document
and a few decoded documents; a corrupt shard or a tokenizer that does not match is an error (exit 2).
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from curate.cli import print_error
from curate.shards.format import ShardFormatError
from curate.shards.shard_set import ShardSet

_BAR_WIDTH = 40


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show a shard directory: counts, tokens per document, samples, tokenizer hash"
    )
    parser.add_argument("shard_dir", help="a directory written by the tokenize stage, e.g. output/web/shards")
    parser.add_argument("--samples", type=int, default=3, help="documents to decode and show (default 3)")
    parser.add_argument("--chars", type=int, default=300, help="characters shown per sample (default 300)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> int:
    # A negative --chars cut the samples from their end instead (text[:-5]).
    for flag, value, least in (("--samples", args.samples, 0), ("--chars", args.chars, 1)):
        if value < least:
            print_error(console, f"{flag} {value}: give a number of at least {least}")
            return 2
    try:
        shards = ShardSet(args.shard_dir)
    except ShardFormatError as err:
        print_error(console, err)
        return 2
    meta = shards.metadata
    tok = meta.tokenizer
    console.print(
        f"[bold]{escape(str(shards.directory))}[/bold] · {meta.format} v{meta.format_version} · created {meta.created}"
    )
    pad = "none" if tok.pad_token is None else f"{tok.pad_token} = {tok.pad_id}"
    console.print(f"tokenizer {escape(tok.file)} · sha256 {tok.sha256}", highlight=False)
    console.print(
        f"vocab {tok.vocab_size:,} · EOD {tok.eod_token} = {tok.eod_id} · PAD {pad} · dtype {meta.dtype} · "
        f"pipeline sha256 {meta.pipeline_sha256 or 'not recorded'}",
        highlight=False,
    )
    console.print(prefix_table(shards))
    console.print(length_histogram(shards))
    for line in samples(shards, args.samples, args.chars):
        console.print(line)
    return 0


def prefix_table(shards: ShardSet) -> Table:
    """Documents, tokens and tokens per document for every prefix."""
    table = Table(title="Prefixes", title_justify="left")
    for header in ("prefix", "documents", "tokens", "tokens/doc mean", "median", "max", ".bin MB"):
        table.add_column(header, justify="left" if header == "prefix" else "right")
    for name, shard in shards.shards.items():
        lengths = shard.doc_lengths
        has_docs = lengths.size > 0
        table.add_row(
            name,
            f"{shard.documents:,}",
            f"{shard.tokens:,}",
            f"{lengths.mean():,.1f}" if has_docs else "-",
            f"{np.median(lengths):,.0f}" if has_docs else "-",
            f"{lengths.max():,}" if has_docs else "-",
            f"{shard.bin_path.stat().st_size / 1e6:,.2f}",
        )
    if len(shards.shards) > 1:
        mean = shards.tokens / shards.documents if shards.documents else 0
        table.add_row("all", f"{shards.documents:,}", f"{shards.tokens:,}", f"{mean:,.1f}", "", "", "")
    return table


def length_histogram(shards: ShardSet) -> Table:
    """Documents per power-of-two bucket of tokens per document, as text bars."""
    counts = np.zeros(64, dtype=np.int64)
    for shard in shards.shards.values():
        lengths = shard.doc_lengths
        # Every document has at least its EOD, so log2 is defined; bucket k holds 2^k … 2^(k+1)-1 tokens.
        buckets = np.floor(np.log2(np.maximum(lengths, 1))).astype(np.int64)
        counts += np.bincount(buckets, minlength=64)[:64]
    table = Table(title="Tokens per document", title_justify="left")
    table.add_column("tokens", justify="right")
    table.add_column("documents", justify="right")
    table.add_column("")
    used = np.flatnonzero(counts)
    if not used.size:
        return table
    peak = counts.max()
    for k in range(used[0], used[-1] + 1):
        bar = "█" * int(round(_BAR_WIDTH * counts[k] / peak))
        low, high = 2**k, 2 ** (k + 1) - 1
        table.add_row(f"{low:,}" if low == high else f"{low:,}–{high:,}", f"{counts[k]:,}", bar)
    return table


def samples(shards: ShardSet, count: int, chars: int) -> list[Text]:
    """`count` documents spread evenly over the set, decoded, each cut to `chars` characters."""
    if count <= 0 or not shards.documents:
        return []
    tokenizer = shards.tokenizer()
    eod = shards.metadata.tokenizer.eod_id
    names = list(shards.shards)
    starts = np.cumsum([0] + [shards.shards[n].documents for n in names])
    picks = np.unique(np.linspace(0, shards.documents - 1, num=min(count, shards.documents)).round())
    out = []
    for i in picks.astype(np.int64):
        k = int(np.searchsorted(starts, i, side="right")) - 1
        name, j = names[k], int(i - starts[k])
        ids = shards.shards[name].document(j)
        body = ids[:-1] if ids.size and ids[-1] == eod else ids
        text = tokenizer.decode(body.tolist(), skip_special_tokens=False)
        shown = text if len(text) <= chars else text[:chars] + "…"
        line = Text(f"{name} document {j} · {ids.size:,} tokens\n", style="bold")
        line.append(shown + "\n")
        out.append(line)
    return out
