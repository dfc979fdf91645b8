"""scripts/html_dir_to_warc.py: a directory of HTML pages becomes WARC files that warc_ingest reads."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.curate.test_warc_ingest import read_all

REPO = Path(__file__).resolve().parents[2]


def load_script():
    if str(REPO / "scripts") not in sys.path:  # for its sibling warc_files.py, as when run as a script
        sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location(
        "html_dir_to_warc", REPO / "scripts" / "html_dir_to_warc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_mirror_becomes_deterministic_warc_files_that_ingest_reads(tmp_path):
    site = tmp_path / "site"
    (site / "guide").mkdir(parents=True)
    (site / "index.html").write_text("<html><body><p>Welcome to the manual.</p></body></html>")
    (site / "guide" / "intro.htm").write_bytes(
        b'<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9 au lait.</p></body></html>'
    )
    (site / "guide" / "notes.txt").write_text("not a page")
    script = load_script()
    for out in ("a", "b"):
        assert (
            script.main(
                [str(site), "--out", str(tmp_path / out), "--base-url", "https://x.org/", "--per-file", "1"]
            )
            == 0
        )
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["mirror-00000.warc.gz", "mirror-00001.warc.gz"], "one page per file, the .txt left out"
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), (
            "a rerun is byte-identical"
        )
    kept = [read_all(tmp_path / "a" / name)[0] for name in names]
    urls = [frame["url"].iloc[0] for frame in kept]
    assert urls == ["https://x.org/guide/intro.htm", "https://x.org/index.html"]
    assert "Café au lait" in kept[0]["html"].iloc[0], "decoded with the charset its <meta> names"


def test_excluded_globs_are_left_out(tmp_path):
    site = tmp_path / "site"
    (site / "src").mkdir(parents=True)
    (site / "index.html").write_text("<p>kept</p>")
    (site / "src" / "lib.rs.html").write_text("<p>source listing</p>")
    script = load_script()
    assert script.pages(site, ["**/*"], ["src/**/*"]) == [site / "index.html"]
