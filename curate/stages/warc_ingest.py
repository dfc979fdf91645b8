"""`warc_ingest`: stream WARC / WET files into document rows, one row per WARC record.

Every record becomes exactly one row, kept or dropped with a reason, so `in = kept + dropped` holds
from the very first stage. Why each reason exists:

- `not_response`: the record type is not one we read (warcinfo, request, metadata, revisit, ...).
  These describe the crawl, not a page; they are counted as light rows (no body) so the funnel adds up.
- `http_unparsable`: the HTTP status line or headers of a response cannot be parsed. Without them we
  know neither the content type nor where the body starts, so any "text" would be a guess.
- `not_html`: the content type is not in `content_types` (PDF, images, scripts, feeds...), or is
  missing; the extractor downstream reads HTML only.
- `too_large`: the body exceeds `max_body_bytes`. Huge pages are mostly generated listings or data
  dumps, and holding them would blow a worker's memory: only `max_body_bytes + 1` bytes are read.
- `empty`: a zero-length or whitespace-only body has nothing to extract.
- `decode_error`: no charset (declared in HTTP, declared in `<meta>`, or detected) turns the body into
  text, the body's transfer/content encoding cannot be undone, or what decodes is mostly control or
  replacement characters, i.e. binary served as text.
- `empty_file`: the input file has zero bytes (an interrupted download or copy); one row says so,
  so that the file shows in the funnel instead of vanishing.
- `warc_corrupt`: the file itself is broken (truncated gzip member, garbage between records, a record
  shorter than its Content-Length), or it is gzipped as one stream instead of one member per record
  (`warcio recompress` fixes that). Nothing after the break can be located reliably, so reading stops
  there with one such row and a logged warning; the records before it are kept, and other files are
  other shards.

ARC files (crawls before 2013) are read too, their records mapped to WARC terms; their ids are
`<source>#offset=<offset>` since ARC has no record ids.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import charset_normalizer
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import (
    StatusAndHeaders,
    StatusAndHeadersParser,
    StatusAndHeadersParserException,
)
from warcio.timeutils import timestamp_to_iso_date

from curate.registry import register
from curate.stage import DROP_REASON, ShardContext, SourceStage, StageConfig, StageResult

log = logging.getLogger(__name__)

COLUMNS = ["id", "url", "source", "fetch_time", "content_type", "charset", "html", "text", "warc_offset"]

# What warcio (and the gzip/file layer under it) raises on a broken archive. Only calls that read the
# archive are wrapped in these, so a bug in this module still surfaces as a crash.
_ARCHIVE_ERRORS = (
    ArchiveLoadFailed,
    StatusAndHeadersParserException,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
)

_READ_CHUNK = 1 << 16
# A header block bigger than this is not HTTP; the cap also keeps a newline-free binary block from
# being read as one giant "status line".
_MAX_HTTP_HEADER_BYTES = 64 * 1024
_META_SNIFF_BYTES = 2048
# Real pages have next to no C0/C1 controls or U+FFFD; binary decoded "successfully" as a single-byte
# charset has ~25% of them. 10% separates the two with a wide margin.
_MAX_GARBAGE_FRACTION = 0.10
# Unicode category Cc (C0 and C1 controls) minus the whitespace ones, plus U+FFFD.
_GARBAGE_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")

_STATUS_LINE = re.compile(r"^HTTP/\d(\.\d)?$", re.IGNORECASE)
_STATUS_CODE = re.compile(r"^\d{3}(\s|$)")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_BOMS = [(codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]
# Browsers (WHATWG Encoding) decode these labels as their supersets, and pages rely on it: a page
# declared iso-8859-1 routinely contains windows-1252 curly quotes.
_SUPERSETS = {"iso8859-1": "cp1252", "ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030",
              "shift_jis": "cp932", "euc_kr": "cp949"}  # fmt: skip


# The WARC-Type values of WARC 1.1 (section 6); ARC records are read as `response` (and `warcinfo`).
WARC_TYPES = (
    "warcinfo",
    "response",
    "resource",
    "request",
    "metadata",
    "revisit",
    "conversion",
    "continuation",
)
_MIME_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


class WarcIngestConfig(StageConfig):
    """Options of the `warc_ingest` source stage."""

    max_body_bytes: int = Field(
        2_000_000, gt=0, description="Bodies larger than this are dropped as too_large."
    )
    record_types: list[str] = Field(
        default_factory=lambda: ["response", "conversion"],
        description="WARC-Types read as documents (conversion = WET text); others are not_response.",
    )
    # Declared after record_types, which its validator reads.
    content_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"],
        description="MIME types read as HTML; other response types are dropped as not_html.",
    )
    batch_size: int = Field(500, gt=0, description="Records per yielded batch, bounding memory on big WARCs.")

    # A misspelt or missing entry dropped every record (as not_html or not_response) without a word.
    @field_validator("content_types")
    @classmethod
    def _mime_types(cls, value: list[str], info: ValidationInfo) -> list[str]:
        bad = [t for t in value if not _MIME_TYPE.match(t)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a MIME type; write type/subtype, e.g. 'text/html'")
        typed = [t for t in info.data.get("record_types", ()) if t != "conversion"]  # WET text has none
        if typed and not value:
            raise ValueError(
                f"none listed, so every {typed[0]!r} record is dropped as not_html; list some, e.g. "
                "['text/html'], or read WET text only (record_types: [conversion])"
            )
        return value

    @field_validator("record_types")
    @classmethod
    def _warc_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in WARC_TYPES]
        if unknown or not value:
            got = (
                f"{unknown[0]!r} is not a WARC-Type" if unknown else "none listed, so every record is dropped"
            )
            raise ValueError(f"{got}; list some of: {', '.join(WARC_TYPES)}")
        return value


@dataclass
class _Row:
    """One output row under construction; `reason` is None for kept rows."""

    offset: int
    values: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class _RecordInfo:
    """A record's WARC header fields (ARC records translated into the same terms)."""

    rec_type: str
    url: str | None
    date: str | None
    record_id: str | None
    content_type: str | None  # of the record block; for HTTP responses the HTTP header decides
    identified_type: str | None = None  # the crawler's sniffed payload type, used when HTTP has none

    @classmethod
    def of(cls, record: ArcWarcRecord) -> _RecordInfo:
        headers = record.rec_headers
        if record.format == "arc":
            # ARC files (crawls before 2013) have no record types or ids: a header record, then
            # responses. warcio's own arc2warc would invent random ids, breaking stable ids.
            rec_type = "warcinfo" if record.rec_type == "arc_header" else "response"
            date = headers.get_header("archive-date")
            with contextlib.suppress(ValueError, TypeError):
                date = timestamp_to_iso_date(date)
            return cls(rec_type, headers.get_header("uri"), date, None, headers.get_header("content-type"))
        return cls(
            record.rec_type,
            headers.get_header("WARC-Target-URI"),
            headers.get_header("WARC-Date"),
            headers.get_header("WARC-Record-ID"),
            headers.get_header("Content-Type"),
            headers.get_header("WARC-Identified-Payload-Type"),
        )


@dataclass
class _Block:
    """What was read from one record: its HTTP head (when it should have one) and the first body bytes."""

    has_http: bool = False
    http_headers: StatusAndHeaders | None = None
    body: bytes | None = None


class _HttpHeadTooLong(Exception):
    """The HTTP header block runs past `_MAX_HTTP_HEADER_BYTES`."""


class _BodyDecodeError(Exception):
    """The body's HTTP transfer/content encoding cannot be undone."""


class _TruncatedRecord(Exception):
    """A record ended before its Content-Length: the archive is cut or corrupt."""


@register
class WarcIngest(SourceStage):
    """Reads WARC response records (HTML) and WET conversion records (plain text) into rows."""

    name = "warc_ingest"
    Config = WarcIngestConfig
    config: WarcIngestConfig

    def read(self, path: str, ctx: ShardContext) -> Iterator[StageResult]:
        """Yield batches of `batch_size` records from `path`; a corrupt file ends with one warc_corrupt row."""
        rows: list[_Row] = []
        yielded = False
        with open(path, "rb") as fh:
            for row in self._rows(fh, path):
                rows.append(row)
                if len(rows) >= self.config.batch_size:
                    yield _to_result(rows)
                    rows, yielded = [], True
        if rows or not yielded:
            yield _to_result(rows)

    def _rows(self, fh: BinaryIO, source: str) -> Iterator[_Row]:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            log.warning("%s: empty file (0 bytes)", source)
            yield _Row(offset=0, values={"id": f"{source}#offset=0", "source": source}, reason="empty_file")
            return
        records = ArchiveIterator(fh, no_record_parse=True)
        offset = 0
        while True:
            # Where the next record starts: the previous one was read to its end (see
            # _check_member_complete), so warcio has already moved its offset past it. Inside one gzip
            # member that holds several records (a whole-file gzip) warcio's count goes negative; the
            # rest then lies in the member where the last record read began.
            offset = records.offset if records.offset >= 0 else offset
            try:
                record = next(records, None)
                if record is None:
                    # warcio ends quietly on a last member cut before any output; bytes left over
                    # past the last complete record tell.
                    if offset < size:
                        raise _TruncatedRecord(f"{size - offset} bytes at the end hold no complete record")
                    return
                info = _RecordInfo.of(record)
                block = self._read_block(record.raw_stream, info)
                _check_member_complete(records)
            except (_TruncatedRecord, *_ARCHIVE_ERRORS) as err:
                log.warning(
                    "%s: corrupt archive at offset %d, rest of the file skipped: %s", source, offset, err
                )
                values = {"id": f"{source}#offset={offset}", "source": source}
                yield _Row(offset=offset, values=values, reason="warc_corrupt")
                return
            yield self._classify(info, block, source, offset)

    def _read_block(self, stream: Any, info: _RecordInfo) -> _Block:
        """All reading of one record: HTTP head, up to max_body_bytes + 1 body bytes, then the rest."""
        block = _Block()
        if info.rec_type in self.config.record_types:
            if info.rec_type == "response" and (info.url or "").lower().startswith(("http:", "https:")):
                block.has_http = True
                block.http_headers = _parse_http_headers(stream)
            if block.http_headers is not None or not block.has_http:
                block.body = stream.read(self.config.max_body_bytes + 1)
        while stream.read(_READ_CHUNK):
            pass
        if isinstance(stream, LimitReader) and stream.limit > 0:
            raise _TruncatedRecord(f"record is {stream.limit} bytes shorter than its Content-Length")
        return block

    def _classify(self, info: _RecordInfo, block: _Block, source: str, offset: int) -> _Row:
        """The row for a fully read record: its columns, or the reason it is dropped."""
        row = _Row(offset=offset)
        row.values = {
            "id": info.record_id or f"{source}#offset={offset}",
            "url": info.url,
            "source": source,
            "fetch_time": info.date,
        }
        if info.rec_type not in self.config.record_types:
            row.reason = "not_response"
            return row
        if block.has_http and block.http_headers is None:
            row.reason = "http_unparsable"
            return row
        content_type = info.content_type
        if block.http_headers is not None:
            content_type = block.http_headers.get_header("Content-Type") or info.identified_type
        row.values["content_type"] = _mime(content_type)
        is_text = info.rec_type == "conversion"
        if not is_text and row.values["content_type"] not in {t.lower() for t in self.config.content_types}:
            row.reason = "not_html"
            return row
        row.reason = self._decode_into(row, block, content_type, column="text" if is_text else "html")
        return row

    def _decode_into(self, row: _Row, block: _Block, content_type: str | None, column: str) -> str | None:
        """Decode the body into `row[column]`; return the drop reason, or None when kept."""
        limit = self.config.max_body_bytes
        body = block.body or b""
        if len(body) > limit:
            return "too_large"
        if block.http_headers is not None:
            try:
                body = _undo_http_encodings(body, block.http_headers, limit)
            except _BodyDecodeError:
                return "decode_error"
            if len(body) > limit:
                return "too_large"
        if not body.strip():
            return "empty"
        declared = _CHARSET_PARAM.search(content_type or "")
        decoded = _decode(body, declared.group(1) if declared else None)
        if decoded is None:
            return "decode_error"
        text, row.values["charset"] = decoded
        if not text.strip():
            return "empty"
        row.values[column] = text
        return None


def _check_member_complete(records: ArchiveIterator) -> None:
    """Raise _TruncatedRecord if the gzip member holding the current record stopped short.

    A cut inside the WARC headers loses Content-Length, so the length check cannot see it, and warcio
    itself ends such a file silently; zlib's `eof` flag on the member's decompressor is what tells.
    """
    records.read_to_end()  # consume the record's trailing blank lines, i.e. the rest of its member
    decompressor = records.reader.decompressor if records.reader else None
    # `next_line` set means the member goes on with another record: a whole-file gzip, which warcio
    # reports itself on the next record, with advice.
    if decompressor is not None and not decompressor.eof and not records.next_line:
        raise _TruncatedRecord("gzip member ends before its end-of-stream marker")


def _mime(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


class _CappedLines:
    """A readline-only view of a stream that refuses to read more than `cap` bytes in total."""

    def __init__(self, stream: Any, cap: int) -> None:
        self.stream, self.left = stream, cap

    def readline(self, length: int | None = None) -> bytes:
        if self.left <= 0:
            raise _HttpHeadTooLong(f"HTTP head longer than {_MAX_HTTP_HEADER_BYTES} bytes")
        line = self.stream.readline(min(length or self.left, self.left))
        self.left -= len(line)
        return line


def _parse_http_headers(stream: Any) -> StatusAndHeaders | None:
    """Parse an HTTP response head from `stream`, or None when it is not one."""
    # verify=False: warcio's verifying parser only knows HTTP/1.0 and 1.1; the status line is
    # checked here instead, accepting any HTTP/x.y with a three-digit code.
    parser = StatusAndHeadersParser([], verify=False)
    try:
        parsed = parser.parse(_CappedLines(stream, _MAX_HTTP_HEADER_BYTES))
    except (EOFError, _HttpHeadTooLong):
        return None
    if not _STATUS_LINE.match(parsed.protocol or "") or not _STATUS_CODE.match(parsed.statusline or ""):
        return None
    return parsed


def _undo_http_encodings(body: bytes, headers: StatusAndHeaders, limit: int) -> bytes:
    """Undo chunked transfer encoding and gzip/deflate content encoding, producing at most limit+1 bytes."""
    if "chunked" in (headers.get_header("Transfer-Encoding") or "").lower():
        body = _dechunk(body)
    encoding = (headers.get_header("Content-Encoding") or "identity").strip().lower()
    if encoding in ("", "identity", "none"):
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        # 32 + MAX_WBITS accepts both gzip and zlib headers; some servers send raw deflate instead.
        for wbits in (32 + zlib.MAX_WBITS, -zlib.MAX_WBITS):
            try:
                return zlib.decompressobj(wbits).decompress(body, limit + 1)
            except zlib.error:
                continue
        raise _BodyDecodeError(f"body is not valid {encoding}")
    raise _BodyDecodeError(f"unsupported Content-Encoding {encoding!r}")


def _dechunk(body: bytes) -> bytes:
    parts, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise _BodyDecodeError("chunk size line missing")
        try:
            size = int(body[pos:eol].split(b";", 1)[0], 16)
        except ValueError as err:
            raise _BodyDecodeError("bad chunk size") from err
        if size == 0:
            return b"".join(parts)
        start = eol + 2
        if start + size > len(body):
            raise _BodyDecodeError("chunk runs past the body")
        parts.append(body[start : start + size])
        pos = start + size + 2


def _decode(body: bytes, declared: str | None) -> tuple[str, str] | None:
    """Decode `body` by its BOM, the declared charset, a <meta> charset, UTF-8, then detection.

    Returns (text, codec name) or None when nothing yields plausible text.
    """
    candidates = [enc for bom, enc in _BOMS if body.startswith(bom)]
    if declared:
        candidates.append(declared)
    meta = _META_CHARSET.search(body[:_META_SNIFF_BYTES])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "replace"))
    # Undeclared UTF-8 before detection: bytes that validate as UTF-8 are almost never anything else,
    # most of the web is UTF-8, and the strict check is far cheaper than statistical detection.
    candidates.append("utf-8")
    tried = set()
    for label in candidates:
        codec = _codec(label)
        if codec is None or codec in tried:
            continue
        tried.add(codec)
        try:
            text = body.decode(codec, errors="strict")
        except UnicodeError:  # UnicodeDecodeError, and the bare UnicodeError of e.g. `undefined`
            continue
        if _plausible(text):
            return text, codec
    best = charset_normalizer.from_bytes(body).best()
    if best is None:
        return None
    text = str(best)
    if not _plausible(text):
        return None
    return text, codecs.lookup(best.encoding).name


def _codec(label: str) -> str | None:
    """Python's codec name for a charset label (browser supersets applied), or None if unknown.

    Labels of Python's bytes-to-bytes codecs (`hex`, `base64`, `zlib`, ...) count as unknown: they
    name no text encoding, and `bytes.decode` refuses them.
    """
    try:
        info = codecs.lookup(label.strip())
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return _SUPERSETS.get(info.name, info.name)


def _plausible(text: str) -> bool:
    """False when too much of `text` is control or replacement characters (binary, not text)."""
    _, bad = _GARBAGE_CHARS.subn("", text)
    return bad <= _MAX_GARBAGE_FRACTION * len(text)


def _to_result(rows: list[_Row]) -> StageResult:
    kept = [r for r in rows if r.reason is None]
    dropped = [r for r in rows if r.reason is not None]
    dropped_frame = _frame(dropped)
    dropped_frame[DROP_REASON] = pd.Series([r.reason for r in dropped], dtype=str)
    return StageResult(kept=_frame(kept), dropped=dropped_frame)


def _frame(rows: list[_Row]) -> pd.DataFrame:
    """Rows as a DataFrame with fixed dtypes (object str/None, int64 offset) whatever the batch holds."""
    data = {col: pd.Series([r.values.get(col) for r in rows], dtype=object) for col in COLUMNS[:-1]}
    data["warc_offset"] = pd.Series([r.offset for r in rows], dtype="int64")
    return pd.DataFrame(data, columns=COLUMNS)
