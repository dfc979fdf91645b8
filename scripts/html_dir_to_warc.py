"""Wrap a local mirror of HTML pages (a directory tree, e.g. from `wget --mirror`, or installed HTML docs)
into gzipped WARC files of response records, so that `curate run` can curate it like a crawl.

    python scripts/html_dir_to_warc.py DIR --base-url https://example.org/ --out runs/mirror/warc

Each `.html`/`.htm` file under DIR becomes one response record (HTTP 200, `text/html; charset=utf-8`,
or the charset its `<meta>` names) whose target URI is the base URL plus the file's path relative to DIR.
Files go in sorted path order, `--per-file` records to a WARC file (curate runs one task per input file,
so this sets how many workers can share the job); record ids derive from the URI and dates from the
file's mtime (warc_files.py), so a rerun over the same tree writes byte-identical files.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from warc_files import record_headers, write_warc_files
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)


def pages(root: Path, patterns: list[str], excludes: list[str] = ()) -> list[Path]:
    """The HTML files under root matching any of the glob patterns and none of the excludes, sorted."""
    found = {p for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    found -= {p for pattern in excludes for p in root.glob(pattern)}
    return sorted(p for p in found if p.suffix.lower() in (".html", ".htm"))


def write_record(writer: WARCWriter, uri: str, page: Path) -> None:
    body = page.read_bytes()
    match = _CHARSET.search(body[:4096])
    charset = match.group(1).decode("ascii").lower() if match else "utf-8"
    http = StatusAndHeaders(
        "200 OK",
        [("Content-Type", f"text/html; charset={charset}"), ("Content-Length", str(len(body)))],
        protocol="HTTP/1.1",
    )
    record = writer.create_warc_record(
        uri,
        "response",
        payload=io.BytesIO(body),
        http_headers=http,
        warc_headers_dict=record_headers(uri, page),
    )
    writer.write_record(record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="directory tree of HTML files")
    parser.add_argument("--out", type=Path, required=True, help="directory for the WARC files")
    parser.add_argument("--base-url", default=None, help="URL prefix of the records (default: file URIs)")
    parser.add_argument("--glob", action="append", help="glob under root (repeatable; default **/*)")
    parser.add_argument(
        "--exclude", action="append", default=[], help="glob under root to leave out (repeatable)"
    )
    parser.add_argument("--per-file", type=int, default=500, help="records per WARC file")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a directory")
    if args.per_file < 1:
        parser.error("--per-file must be at least 1")
    files = pages(args.root, args.glob or ["**/*"], args.exclude)
    if not files:
        parser.error(f"no .html/.htm files under {args.root}")
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.base_url.rstrip("/") + "/" if args.base_url else args.root.resolve().as_uri() + "/"
    count = write_warc_files(
        args.out,
        "mirror-{:05d}.warc.gz",
        files,
        args.per_file,
        lambda writer, page: write_record(writer, base + page.relative_to(args.root).as_posix(), page),
    )
    print(f"{len(files)} pages from {args.root} in {count} WARC files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
