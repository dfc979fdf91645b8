"""Shared fixtures: the bundled sample, and a helper that writes pipeline files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"


@pytest.fixture
def write_pipeline(tmp_path):
    """Write a pipeline dict (or raw YAML text) to a file in tmp_path and return its path."""

    def write(content, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


ARTICLE = (
    "The history of the old harbour town is long and full of surprises. Many people who visit it for the "
    "first time are amazed by the stone houses and the narrow streets that wind between them. In the summer "
    "the markets are full of fruit and vegetables, and the cafes are busy with visitors and locals alike. "
)


def write_warc(path: Path, pages: list[tuple[str, str]]) -> Path:
    """A gzipped WARC of HTML `response` records, one per (url, paragraph text) pair."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, text in pages:
            html = (
                f"<html><head><title>{url}</title></head><body><nav><a href='/'>Home</a> <a href='/a'>About</a>"
                f"</nav><article><h1>{url}</h1><p>{text}</p><p>{ARTICLE}</p></article>"
                "<footer>Copyright 2026</footer></body></html>"
            ).encode()
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            record = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(html),
                http_headers=headers,
                warc_headers_dict={
                    "WARC-Record-ID": f"<urn:sha1:{hashlib.sha1(url.encode()).hexdigest()}>",
                    "WARC-Date": "2026-01-01T00:00:00Z",
                },
            )
            writer.write_record(record)
    return path


@pytest.fixture
def small_crawl(tmp_path) -> Path:
    """Six small WARC files (six shards) of English pages, two pages too short to keep."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    for n in range(6):
        pages = [(f"http://site{n}.example/{i}", ARTICLE * (1 + i)) for i in range(4)]
        write_warc(crawl / f"part{n}.warc.gz", pages)
    return crawl


@pytest.fixture(scope="session")
def web_run(tmp_path_factory):
    """`pipelines/web.yaml` run once on the bundled sample (1 worker, rejects on); the loaded Pipeline.

    Paths in the file are made absolute and the output goes to a temporary directory, so the run does
    not depend on the working directory; read its output under `pipeline.output_dir`.
    """
    from curate.config import load_pipeline
    from curate.engine import run_pipeline

    config = yaml.safe_load((REPO / "pipelines" / "web.yaml").read_text())
    config["input"]["paths"] = [str(REPO / p) for p in config["input"]["paths"]]
    for stage in config["stages"]:
        if "model_path" in stage:
            stage["model_path"] = str(REPO / stage["model_path"])
    root = tmp_path_factory.mktemp("web_run")
    config["output"]["dir"] = str(root / "out")
    config["executor"].update(workers=1, dashboard_address=":0")
    path = root / "web.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    pipeline = load_pipeline(path)
    run_pipeline(pipeline)
    return pipeline
