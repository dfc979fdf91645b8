"""warc_ingest: every WARC record becomes one row, kept or dropped with the reason it names."""

from __future__ import annotations

import gzip
import importlib.util
import io
import random
import sys
import zlib
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curate.registry import lookup
from curate.stage import DROP_REASON, ShardContext
from curate.stages.warc_ingest import COLUMNS, WarcIngest

REPO = Path(__file__).resolve().parents[2]

FRENCH = (
    '<html><head><meta charset="utf-8"><title>Café</title></head><body>'
    "<p>Le café de la rue Saint-Honoré est très réputé pour ses crêpes, ses gâteaux à la crème et son thé "
    "à la menthe. « C’est un lieu où l’on se sent chez soi », explique la propriétaire, qui a ouvert "
    "l’établissement en 1998. Les habitués y viennent chaque matin pour lire le journal, discuter avec "
    "les serveurs et goûter les spécialités du jour.</p></body></html>"
)
JAPANESE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head><body>'
    "<p>東京の下町には、昔ながらの商店街が今も数多く残っています。朝早くから魚屋や八百屋が店を開け、"
    "近所の人々が買い物かごを手に集まってきます。</p></body></html>"
)
PAGE = "<html><body><p>A perfectly ordinary page about gardening and the weather.</p></body></html>"


def load_generator():
    """scripts/make_sample_warc.py as a module (scripts/ is not a package)."""
    if "make_sample_warc" not in sys.modules:
        path = REPO / "scripts" / "make_sample_warc.py"
        spec = importlib.util.spec_from_file_location("make_sample_warc", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_sample_warc"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["make_sample_warc"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict[str, Counter]]:
    out = tmp_path_factory.mktemp("samples")
    expected = load_generator().build(out)
    return out, expected


def read_all(path: Path, **config) -> tuple[pd.DataFrame, pd.DataFrame]:
    stage = WarcIngest(WarcIngest.Config(**config))
    ctx = ShardContext(shard_id=path.name, source_path=str(path), output_dir=path.parent)
    results = list(stage.read(str(path), ctx))
    return pd.concat([r.kept for r in results]), pd.concat([r.dropped for r in results])


def outcome(kept: pd.DataFrame, dropped: pd.DataFrame) -> Counter:
    counts = Counter(dropped[DROP_REASON])
    counts["kept"] = len(kept)
    return +counts


# -- building small WARCs in tests ------------------------------------------------------------------


class WarcBuilder:
    """Writes gzip-per-record WARCs with warcio, remembering where each record starts."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.writer = WARCWriter(self.buf, gzip=True)
        self.offsets: list[int] = []

    def _write(self, record) -> None:
        self.offsets.append(self.buf.tell())
        self.writer.write_record(record)

    def response(self, url: str, body: bytes, content_type: str | None = "text/html; charset=utf-8",
                 extra_headers: list[tuple[str, str]] = ()) -> None:  # fmt: skip
        headers = [("Content-Type", content_type)] if content_type else []
        http = StatusAndHeaders("200 OK", headers + list(extra_headers), protocol="HTTP/1.1")
        self._write(self.writer.create_warc_record(url, "response", payload=io.BytesIO(body),
                                                   length=len(body), http_headers=http))  # fmt: skip

    def raw_response(self, url: str, block: bytes) -> None:
        """A response whose block is written as given (warcio would refuse to build a bad HTTP head)."""
        record = self.writer.create_warc_record(url, "resource", payload=io.BytesIO(block), length=len(block),
                                                warc_content_type="application/http; msgtype=response")  # fmt: skip
        record.rec_type = "response"
        record.rec_headers.replace_header("WARC-Type", "response")
        self._write(record)

    def other(self, rec_type: str, url: str = "https://example.com/") -> None:
        payload = b"software: test\r\n" if rec_type in ("warcinfo", "metadata") else b""
        http = None
        if rec_type == "request":
            http = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.com")], is_http_request=True)
        self._write(self.writer.create_warc_record(url if rec_type != "warcinfo" else "", rec_type,
                                                   payload=io.BytesIO(payload), length=len(payload),
                                                   http_headers=http))  # fmt: skip

    def conversion(self, url: str, text: str) -> None:
        data = text.encode("utf-8")
        self._write(self.writer.create_warc_record(url, "conversion", payload=io.BytesIO(data), length=len(data),
                                                   warc_content_type="text/plain"))  # fmt: skip

    def save(self, path: Path, cut_last: float | None = None) -> Path:
        """Write the file; `cut_last` keeps only that fraction of the last record's gzip member."""
        data = self.buf.getvalue()
        if cut_last is not None:
            last = self.offsets[-1]
            data = data[: last + int((len(data) - last) * cut_last)]
        path.write_bytes(data)
        return path


# -- the sample crawl -------------------------------------------------------------------------------


def test_sample_files_give_the_drop_reasons_their_readme_promises(sample):
    out, expected = sample
    for name, counts in expected.items():
        kept, dropped = read_all(out / name)
        assert outcome(kept, dropped) == +counts, name


def test_every_record_of_the_sample_is_one_row(sample):
    out, expected = sample
    for name in expected:
        if name.startswith("broken"):
            continue
        with open(out / name, "rb") as fh:
            records = sum(1 for _ in ArchiveIterator(fh))
        kept, dropped = read_all(out / name)
        assert len(kept) + len(dropped) == records, name
        assert kept["id"].is_unique and not set(kept["id"]) & set(dropped["id"])


def test_checked_in_sample_matches_the_generator(sample):
    out, _ = sample
    checked_in = REPO / "data" / "samples"
    for path in sorted(out.iterdir()):
        ours, theirs = path.read_bytes(), (checked_in / path.name).read_bytes()
        if path.suffix == ".gz":  # compare content: another zlib build may deflate differently
            # the truncated file's last member is cut, so decompress member by member up to the cut
            ours, theirs = _gunzip_prefix(ours), _gunzip_prefix(theirs)
        assert ours == theirs, f"data/samples/{path.name} is stale: rerun scripts/make_sample_warc.py"


def _gunzip_prefix(data: bytes) -> bytes:
    """Decompress concatenated gzip members, keeping what a cut last member yields."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = []
    while data:
        out.append(decompressor.decompress(data))
        data = decompressor.unused_data
        if data:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return b"".join(out)


def test_generator_output_is_byte_identical_across_runs(tmp_path):
    generator = load_generator()
    generator.build(tmp_path / "a", seed=7)
    generator.build(tmp_path / "b", seed=7)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # gzip members carry no timestamp (MTIME bytes 4..7 are zero)
    assert (tmp_path / "a" / "crawl-00.warc.gz").read_bytes()[4:8] == b"\0\0\0\0"


def test_sample_pages_cover_several_languages_and_fit_the_size_budget(sample):
    out, _ = sample
    kept = pd.concat([read_all(p)[0] for p in sorted(out.glob("crawl-0*.warc.gz"))])
    langs = Counter(kept["html"].str.extract(r'<html lang="(\w+)"')[0].dropna())
    assert len(langs) >= 5 and langs.most_common(1)[0][0] == "en"
    assert sum(p.stat().st_size for p in out.iterdir()) < 300_000


def test_wet_conversion_records_fill_text_not_html(sample):
    out, _ = sample
    kept, dropped = read_all(out / "crawl-wet.warc.wet.gz")
    assert len(kept) == 4 and list(dropped[DROP_REASON]) == ["not_response"]  # the warcinfo
    assert kept["html"].isna().all()
    assert kept["text"].map(lambda t: isinstance(t, str) and len(t.split()) > 50).all()
    assert set(kept["content_type"]) == {"text/plain"}


def test_cp1252_page_declared_utf8_in_the_sample_is_kept(sample):
    out, _ = sample
    kept = pd.concat([read_all(p)[0] for p in sorted(out.glob("crawl-0*.warc.gz"))])
    musee = kept[kept["url"].str.endswith("/musee")].iloc[0]
    assert musee["charset"] == "cp1252"
    assert "Une journée au musée avec les enfants" in musee["html"]


def test_ids_and_rows_are_stable_across_reads(sample):
    out, _ = sample
    path = out / "crawl-01.warc.gz"
    first_kept, first_dropped = read_all(path)
    second_kept, second_dropped = read_all(path)
    pd.testing.assert_frame_equal(first_kept, second_kept)
    pd.testing.assert_frame_equal(first_dropped, second_dropped)
    assert first_kept["id"].str.match(r"^<urn:uuid:[0-9a-f-]{36}>$").all()


# -- each malformed kind, built in the test ---------------------------------------------------------


def test_each_malformed_kind_lands_in_its_named_reason(tmp_path):
    rng = random.Random(0)
    b = WarcBuilder()
    b.other("warcinfo")
    b.other("request")
    b.other("metadata")
    b.response("https://ok.example/", PAGE.encode())
    b.raw_response("https://bad.example/", b"GARBAGE \x00 LINE\r\nContent-Type: text/html\r\n\r\n<p>hi</p>")
    b.response("https://pdf.example/a.pdf", b"%PDF-1.4 ...", content_type="application/pdf")
    b.response("https://nocontenttype.example/", PAGE.encode(), content_type=None)
    b.response("https://big.example/", b"<p>" + b"x" * 10_000 + b"</p>")
    b.response("https://empty.example/", b"")
    b.response("https://blank.example/", b" \r\n\t \n")
    b.response("https://binary.example/", bytes(rng.getrandbits(8) for _ in range(4096)))
    path = b.save(tmp_path / "malformed.warc.gz")

    kept, dropped = read_all(path, max_body_bytes=5000)
    reasons = dict(zip(dropped["url"], dropped[DROP_REASON], strict=True))
    assert list(kept["url"]) == ["https://ok.example/"]
    assert reasons == {
        None: "not_response",  # warcinfo has no target URI
        "https://example.com/": "not_response",  # request and metadata
        "https://bad.example/": "http_unparsable",
        "https://pdf.example/a.pdf": "not_html",
        "https://nocontenttype.example/": "not_html",
        "https://big.example/": "too_large",
        "https://empty.example/": "empty",
        "https://blank.example/": "empty",
        "https://binary.example/": "decode_error",
    }
    assert len(kept) + len(dropped) == len(b.offsets)
    assert dropped[["html", "text"]].isna().all().all()  # dropped rows stay light


@pytest.mark.parametrize("cut", [0.05, 0.3, 0.5, 0.95])  # inside the WARC headers ... near the end
def test_truncated_file_keeps_good_records_then_one_warc_corrupt(tmp_path, cut):
    b = WarcBuilder()
    for n in range(3):
        b.response(f"https://ok.example/{n}", PAGE.encode())
    b.response("https://cut.example/", (PAGE * 40).encode())
    path = b.save(tmp_path / "cut.warc.gz", cut_last=cut)

    kept, dropped = read_all(path)
    assert list(kept["url"]) == [f"https://ok.example/{n}" for n in range(3)]
    assert list(dropped[DROP_REASON]) == ["warc_corrupt"]
    assert dropped["id"].iloc[0] == f"{path}#offset={b.offsets[-1]}"
    assert dropped["warc_offset"].iloc[0] == b.offsets[-1]


def test_a_file_cut_anywhere_never_raises_and_ends_in_at_most_one_warc_corrupt(sample, tmp_path):
    out, _ = sample
    data = (out / "crawl-02.warc.gz").read_bytes()
    path = tmp_path / "cut.warc.gz"
    for size in random.Random(3).sample(range(len(data)), 40):
        path.write_bytes(data[:size])
        _, dropped = read_all(path)
        corrupt = list(dropped[DROP_REASON] == "warc_corrupt")
        assert sum(corrupt) <= 1 and (not any(corrupt) or corrupt[-1]), size


def test_whole_file_gzip_is_reported_as_warc_corrupt_not_raised(tmp_path):
    b = WarcBuilder()
    for n in range(3):
        b.response(f"https://ok.example/{n}", PAGE.encode())
    path = tmp_path / "onestream.warc.gz"
    path.write_bytes(gzip.compress(gzip.decompress(b.buf.getvalue()), mtime=0))  # one gzip stream
    kept, dropped = read_all(path)
    assert list(dropped[DROP_REASON]) == ["warc_corrupt"] and list(dropped["warc_offset"]) == [0]
    # what follows the first record is unreachable until `warcio recompress`
    assert list(kept["url"]) == ["https://ok.example/0"]


@pytest.mark.parametrize("tail", [b"this is not a gzip member\r\n", bytes(range(256)) * 4])
def test_garbage_after_good_records_is_one_warc_corrupt(tmp_path, tail):
    b = WarcBuilder()
    b.response("https://ok.example/", PAGE.encode())
    path = b.save(tmp_path / "junk.warc.gz")
    path.write_bytes(path.read_bytes() + tail)

    kept, dropped = read_all(path)
    assert list(kept["url"]) == ["https://ok.example/"]
    assert list(dropped[DROP_REASON]) == ["warc_corrupt"]


def test_file_that_is_not_a_warc_is_one_warc_corrupt_row(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\nnothing to see here\n")
    kept, dropped = read_all(path)
    assert kept.empty and list(dropped[DROP_REASON]) == ["warc_corrupt"]
    assert dropped["id"].iloc[0] == f"{path}#offset=0"


def test_windows_1252_body_declared_utf8_decodes_by_detection(tmp_path):
    b = WarcBuilder()
    b.response("https://cafe.example/", FRENCH.encode("cp1252"), content_type="text/html; charset=utf-8")
    kept, dropped = read_all(b.save(tmp_path / "cp1252.warc.gz"))
    assert dropped.empty
    assert kept["html"].iloc[0] == FRENCH
    assert kept["charset"].iloc[0] == "cp1252"


def test_meta_charset_decodes_when_http_declares_none(tmp_path):
    b = WarcBuilder()
    b.response("https://tokyo.example/", JAPANESE.encode("shift_jis"), content_type="text/html")
    kept, _ = read_all(b.save(tmp_path / "sjis.warc.gz"))
    assert kept["html"].iloc[0] == JAPANESE
    assert kept["charset"].iloc[0] == "cp932"  # Shift_JIS as browsers read it


def test_gzip_content_encoding_is_undone(tmp_path):
    b = WarcBuilder()
    b.response("https://gz.example/", gzip.compress(PAGE.encode(), mtime=0),
               extra_headers=[("Content-Encoding", "gzip")])  # fmt: skip
    kept, _ = read_all(b.save(tmp_path / "gz.warc.gz"))
    assert kept["html"].iloc[0] == PAGE


def test_wet_record_built_in_test_goes_to_text(tmp_path):
    b = WarcBuilder()
    b.conversion("https://text.example/", "Erste Zeile.\nZweite Zeile mit Umlauten: äöü.\n")
    kept, _ = read_all(b.save(tmp_path / "t.warc.wet.gz"))
    assert kept["text"].iloc[0] == "Erste Zeile.\nZweite Zeile mit Umlauten: äöü.\n"
    assert kept["html"].iloc[0] is None


def test_missing_record_id_falls_back_to_source_and_offset(tmp_path):
    b = WarcBuilder()
    b.response("https://first.example/", PAGE.encode())
    data = gzip.decompress(b.buf.getvalue()).replace(b"WARC-Record-ID:", b"X-Removed-ID:")
    path = tmp_path / "noid.warc"
    path.write_bytes(data)
    kept, _ = read_all(path)
    assert kept["id"].iloc[0] == f"{path}#offset=0"


def test_batches_are_bounded_and_keep_their_dtypes(sample):
    out, _ = sample
    stage = WarcIngest(WarcIngest.Config(batch_size=4))
    results = list(stage.read(str(out / "crawl-02.warc.gz"), None))
    assert len(results) > 5
    for r in results:
        assert len(r.kept) + len(r.dropped) <= 4
        assert list(r.kept.columns) == COLUMNS and list(r.dropped.columns) == [*COLUMNS, DROP_REASON]
        assert str(r.kept["warc_offset"].dtype) == "int64" and str(r.dropped["warc_offset"].dtype) == "int64"
        assert all(str(r.kept[c].dtype) == "object" for c in COLUMNS[:-1])


def test_config_is_registered_typed_and_strict():
    assert lookup("warc_ingest") is WarcIngest
    assert WarcIngest.Config().max_body_bytes == 2_000_000
    with pytest.raises(ValidationError):
        WarcIngest.Config(max_body_byte=10)
    with pytest.raises(ValidationError):
        WarcIngest.Config(batch_size=0)


@pytest.mark.parametrize(
    "label", ["hex", "rot13", "base64", "zlib", "bz2", "uu", "quopri", "punycode", "undefined"]
)
@pytest.mark.parametrize("declared_in", ["http", "meta"])
def test_a_charset_that_is_no_text_encoding_is_skipped_not_raised(tmp_path, label, declared_in):
    # Python knows these names, but as bytes-to-bytes codecs or ones that always fail: a page declaring
    # one is read like a page declaring an unknown charset (UTF-8, then detection).
    page = PAGE.replace("<body>", f'<head><meta charset="{label}"></head><body>')
    content_type = f"text/html; charset={label}" if declared_in == "http" else "text/html"
    b = WarcBuilder()
    b.response("https://odd.example/", page.encode(), content_type=content_type)
    b.response("https://binary.example/", bytes(range(256)) * 8, content_type=content_type)
    kept, dropped = read_all(b.save(tmp_path / "odd.warc.gz"))
    assert list(kept["url"]) == ["https://odd.example/"] and kept["html"].iloc[0] == page
    assert kept["charset"].iloc[0] == "utf-8"
    assert list(dropped[DROP_REASON]) == ["decode_error"]


def test_a_zero_byte_file_is_one_empty_file_row(tmp_path):
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(b"")
    kept, dropped = read_all(path)
    assert kept.empty and list(dropped[DROP_REASON]) == ["empty_file"]
    assert dropped["id"].iloc[0] == f"{path}#offset=0"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"record_types": ["respons"]}, "'respons' is not a WARC-Type; list some of: warcinfo, response"),
        ({"record_types": []}, "none listed, so every record is dropped"),
        ({"content_types": ["html"]}, "'html' is not a MIME type; write type/subtype"),
        ({"content_types": []}, "none listed, so every 'response' record is dropped as not_html"),
    ],
)
def test_types_that_match_no_record_are_config_errors(config, message):
    # Every record was dropped, as not_response or not_html, without a word.
    with pytest.raises(ValueError, match=message):
        WarcIngest.Config(**config)
    assert WarcIngest.Config(record_types=["conversion"], content_types=[]).record_types == ["conversion"]
