"""Write the human-written prose installed on a machine as WET files (gzipped WARC `conversion` records,
Common Crawl's text format), so that `curate run` can curate it like a crawl's text: a real corpus for
an offline machine, where no crawl can be fetched.

    python scripts/local_text_to_wet.py man --out runs/local_text/wet
    python scripts/local_text_to_wet.py docstrings /usr/lib/python3/dist-packages --out runs/local_text/wet
    curate run pipelines/local_text.yaml

Sources:
  man          the English man pages under --man-dir (man<N>/; translations sit in other directories),
               rendered by groff (`-man -t -Tutf8`, no overstrikes or colours) with a 3,000-character
               line length, so that a paragraph comes out as one line, as a web page's text does, and not
               wrapped at 78 columns, which would defeat the line rules of C4 and FineWeb. The running
               header and footer are removed and the indentation dropped. Symbolic links and `.so`
               stubs (one page under another name) are left out; a page that groff fails on or that
               renders empty is counted and left out.
  docstrings   one record per Python file under the given roots: its module, class and function
               docstrings in source order, read with `ast` (nothing is imported). Each docstring's
               wrapped paragraphs are joined into lines; indented, bulleted and doctest lines stay as
               they are. Files without docstrings, or that do not parse, are counted and left out.

Records go in sorted path order, `--per-file` to a WET file named after the source; record ids derive
from the file URI and dates from the file's mtime (warc_files.py), so a rerun writes byte-identical
files.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import io
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from warc_files import record_headers, write_warc_files
from warcio.warcwriter import WARCWriter

_SECTION_DIR = re.compile(r"man[0-9n]$")
_BLANK_RUNS = re.compile(r"\n{3,}")
# Lines that are structure, not wrapped prose: bullets, doctests, numbered items, section underlines.
_KEEP_LINE = re.compile(r"^(\s|[-*+•] |>>> |\.\.\. |\d+[.)] |[-=~^]{3,}$)")
GROFF = ["groff", "-man", "-t", "-Tutf8", "-P-cbou", "-rLL=3000n"]


def man_pages(man_dir: Path) -> list[Path]:
    """The compressed or plain English man pages under man_dir, sorted; symbolic links left out."""
    sections = [d for d in sorted(man_dir.iterdir()) if d.is_dir() and _SECTION_DIR.match(d.name)]
    return sorted(p for d in sections for p in d.iterdir() if p.is_file() and not p.is_symlink())


def render_man_page(path: Path, timeout: float = 30.0) -> tuple[str, str | None]:
    """(outcome, text): `rendered` with the page's text, or `unreadable` / `so_stub` / `groff_failed` /
    `empty`."""
    try:
        data = path.read_bytes()
        source = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return "unreadable", None
    if source.lstrip().startswith(".so "):
        return "so_stub", None
    try:
        done = subprocess.run(GROFF, input=source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "groff_failed", None
    if done.returncode != 0:
        return "groff_failed", None
    lines = [line.strip() for line in done.stdout.decode("utf-8", errors="replace").splitlines()]
    body = [line for line in lines if line]
    if len(body) < 3:
        return "empty", None
    # The first and last non-blank lines are the running header and footer (NAME(1) ... NAME(1)).
    first, last = lines.index(body[0]), len(lines) - 1 - lines[::-1].index(body[-1])
    text = _BLANK_RUNS.sub("\n\n", "\n".join(lines[first + 1 : last])).strip()
    return ("rendered", text) if text else ("empty", None)


def python_files(roots: Iterable[Path]) -> list[Path]:
    return sorted({p for root in roots for p in root.rglob("*.py") if p.is_file() and not p.is_symlink()})


def unwrap(docstring: str) -> str:
    """Join each paragraph's wrapped lines into one line; lines that carry structure stay as they are."""
    paragraphs = []
    for block in docstring.split("\n\n"):
        lines = block.split("\n")
        if len(lines) > 1 and not any(_KEEP_LINE.match(line) for line in lines):
            lines = [" ".join(line.strip() for line in lines)]
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def module_docstrings(path: Path) -> tuple[str, str | None]:
    """(outcome, text): `read` with the file's docstrings in source order, or `unparsable` /
    `no_docstrings`."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError, RecursionError):
        return "unparsable", None
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, documented) and (doc := ast.get_docstring(node)):
            found.append(unwrap(doc))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return ("read", "\n\n".join(found)) if found else ("no_docstrings", None)


SOURCES: dict[str, tuple[Callable[[argparse.Namespace], list[Path]], Callable]] = {
    "man": (lambda args: man_pages(args.man_dir), render_man_page),
    "docstrings": (lambda args: python_files(args.roots), module_docstrings),
}


def write_record(writer: WARCWriter, source: Path, text: str) -> None:
    uri = source.resolve().as_uri()
    record = writer.create_warc_record(
        uri,
        "conversion",
        payload=io.BytesIO(text.encode("utf-8")),
        warc_content_type="text/plain",
        warc_headers_dict=record_headers(uri, source),
    )
    writer.write_record(record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=list(SOURCES), help="what to read")
    parser.add_argument("roots", nargs="*", type=Path, help="docstrings: directories of Python files")
    parser.add_argument(
        "--man-dir", type=Path, default=Path("/usr/share/man"), help="man: where the pages are"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the WET files")
    parser.add_argument("--per-file", type=int, default=2000, help="records per WET file")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    args = parser.parse_args(argv)
    if args.per_file < 1:
        parser.error("--per-file must be at least 1")
    if args.source == "man":
        if not args.man_dir.is_dir():
            parser.error(f"--man-dir {args.man_dir} is not a directory")
        if shutil.which(GROFF[0]) is None:
            parser.error("groff is not installed (apt install groff-base)")
    elif not args.roots or not all(root.is_dir() for root in args.roots):
        parser.error("docstrings: give one or more directories of Python files")
    list_files, read = SOURCES[args.source]
    files = list_files(args)
    if not files:
        parser.error(f"{args.source}: nothing to read")
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes: Counter[str] = Counter()
    kept = []
    with ProcessPoolExecutor(args.workers) as pool:  # map keeps the sorted order
        for path, (outcome, text) in zip(files, pool.map(read, files, chunksize=32), strict=True):
            outcomes[outcome] += 1
            if text is not None:
                kept.append((path, text))
    write_warc_files(
        args.out,
        args.source + "-{:05d}.warc.wet.gz",
        kept,
        args.per_file,
        lambda w, item: write_record(w, *item),
    )
    summary = ", ".join(f"{name} {count:,}" for name, count in sorted(outcomes.items()))
    print(f"{args.source}: {len(files):,} files: {summary}; {len(kept):,} records in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
