"""pii end to end: after `pipelines/web.yaml` on the bundled sample, no e-mail address or IP address of
the input is left in the Parquet dataset, the JSONL dataset or the decoded token shards.

Unredacted text stays in two places of the output directory, by design, and nowhere else (checked):
`rejects/`, which holds documents dropped by stages before `pii` (they never reached it), and the
engine's checkpoints of the segments before `pii` (`segment-NN/part-*`, what a rerun resumes from).
Neither is a dataset; publish `dataset/`, `dataset_jsonl/` and `shards/`, not the whole directory.
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from warcio.archiveiterator import ArchiveIterator

from curate.planner import plan
from curate.shards.shard_set import ShardSet
from tests.conftest import SAMPLES

EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
# Candidates only: ipaddress decides what is an address ("10:30:45" and "1.2.3.999" are not).
IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])")


def input_texts() -> Iterator[str]:
    """Every record payload of the sample's WARC and WET files, and each capture's server IP."""
    for path in sorted(SAMPLES.glob("*.gz")):
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh):
                yield record.content_stream().read().decode("utf-8", errors="replace")
                yield record.rec_headers.get_header("WARC-IP-Address") or ""


def is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


@cache
def input_secrets() -> frozenset[str]:
    """The e-mail addresses and IPv4/IPv6 addresses written anywhere in the input."""
    found = set()
    for text in input_texts():
        found.update(EMAIL.findall(text))
        found.update(c for c in IPV4.findall(text) + IPV6.findall(text) if is_ip(c))
    return frozenset(found)


def leaks(texts) -> set[str]:
    return {secret for text in texts for secret in input_secrets() if secret in text}


def parquet_texts(path: Path) -> Iterator[str]:
    """Every string cell of a Parquet file, whatever its column."""
    frame = pd.read_parquet(path)
    for column in frame.columns:
        yield from (v for v in frame[column] if isinstance(v, str))


def jsonl_texts(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        yield fh.read()


def shard_texts(directory: Path) -> Iterator[str]:
    """Every document of a shard directory, decoded with the tokenizer it was written with."""
    shard_set = ShardSet(directory)
    tokenizer = shard_set.tokenizer()
    for shard in shard_set.shards.values():
        for j in range(shard.documents):
            yield tokenizer.decode(shard.document(j).tolist(), skip_special_tokens=False)


def upstream_of_pii(pipeline) -> tuple[set[str], set[str]]:
    """Names of the stages before `pii` and the segment directories that checkpoint them."""
    segments = plan(pipeline)
    pii_segment = next(s.index for s in segments if any(spec.id == "pii" for spec in s.stages))
    stages = {spec.id for spec in pipeline.stages[: [s.id for s in pipeline.stages].index("pii")]}
    return stages, {s.dirname for s in segments if s.index < pii_segment}


def test_the_input_holds_emails_and_ips_that_reach_pii(web_run):
    secrets = input_secrets()
    assert len([s for s in secrets if "@" in s]) >= 3 and len([s for s in secrets if is_ip(s)]) >= 3
    # The scan finds them where text was not yet redacted: they reached the pii stage.
    _, segments = upstream_of_pii(web_run)
    last_before_pii = web_run.output_dir / max(segments)
    seen = leaks(t for p in sorted(last_before_pii.glob("part-*.parquet")) for t in parquet_texts(p))
    assert {s for s in seen if "@" in s} and {s for s in seen if "." in s and is_ip(s)}


@pytest.mark.parametrize("output", ["dataset", "dataset_jsonl", "shards"])
def test_no_input_email_or_ip_in_the_curated_outputs(web_run, output):
    out = web_run.output_dir
    if output == "dataset":
        texts = [t for p in sorted((out / "dataset").glob("*.parquet")) for t in parquet_texts(p)]
        counts = pd.concat(pd.read_parquet(p) for p in sorted((out / "dataset").glob("*.parquet")))
        # The redacted documents are in the dataset, not dropped.
        assert counts["pii_email_address_count"].sum() >= 3 and counts["pii_ip_address_count"].sum() >= 2
    elif output == "dataset_jsonl":
        texts = [t for p in sorted((out / "dataset_jsonl").glob("*.jsonl.gz")) for t in jsonl_texts(p)]
    else:
        texts = list(shard_texts(out / "shards"))
        assert any("<EMAIL_ADDRESS>" in t for t in texts) and any("<IP_ADDRESS>" in t for t in texts)
    assert texts
    assert leaks(texts) == set()


def test_only_rejects_and_upstream_checkpoints_hold_unredacted_text(web_run):
    out = web_run.output_dir
    stages, segments = upstream_of_pii(web_run)
    rejected_by = {p.name for p in (out / "rejects").iterdir()}
    assert rejected_by and rejected_by <= stages, "rejects hold only documents dropped before pii"
    holders = set()
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        place = path.relative_to(out).parts[0]
        if place == "rejects" or place in segments:
            continue
        if path.suffix == ".parquet":
            texts = parquet_texts(path)
        elif path.name.endswith(".jsonl.gz"):
            texts = jsonl_texts(path)
        elif path.suffix in (".bin", ".idx", ".png"):
            continue  # shards are decoded below; the funnel chart is an image
        else:  # stats, markers, metadata, tokenizer.json
            texts = [path.read_text(encoding="utf-8", errors="replace")]
        if leaks(texts):
            holders.add(str(path.relative_to(out)))
    if leaks(shard_texts(out / "shards")):
        holders.add("shards/")
    assert holders == set()
