"""Tokens/s of curate's tokenize + write path next to HF tokenizers' encode_batch + a naive writer, one core.

Both sides run in this process on the same documents with the same tokenizer.json:

- **curate**: what one `tokenize` encode task does (`curate.stages.tokenize.encode_into`): verify tiktoken
  against HF on the first 1 MB, encode with `encode_to_numpy`, append EOD with `np.concatenate`, write the
  `.bin` from the array buffer, then the `.idx`. Its one-time setup per worker process (load the
  tokenizer, build the tiktoken encoding and check the vocabulary) is timed apart, like the baseline's
  tokenizer load, and the ratio is printed with and without it.
- **baseline**: `Tokenizer.encode_batch` 1,000 documents at a time, then per document a Python list of
  ids + EOD turned into `array('H')` and written, lengths kept in a list, and the `.idx` built with
  `array`s in Python loops.

The two `.bin/.idx` pairs must be byte-identical (checked), so both sides do the same work.

Single-threaded, for per-core figures: `RAYON_NUM_THREADS=1` sizes the Rayon pool that HF tokenizers'
batch methods (and BPE training) use to one thread, and `TOKENIZERS_PARALLELISM=false` makes those methods
run serially in the calling thread; both are read once, so they are set before `tokenizers` is imported.
tiktoken's `encode_to_numpy` runs in the calling thread. CPU seconds are reported next to wall seconds:
on a shared machine they are the steadier figure.

Text: documents generated (seeded) from a multilingual word pool: the curated sample's text
(`output/web/dataset/*.parquet`, written by `curate run pipelines/web.yaml`) when present, plus built-in
passages in 7 languages. Words are drawn with Zipf frequencies from the pool's words and recombined
pseudo-words (a word's first half + another's second half, same script), so the vocabulary has a long
tail as real text does and HF's word cache does not see only repeats. Tokenizer: a byte-level BPE trained
on the first 8 MB (`--vocab-size`), or `--tokenizer PATH`.

    python bench/tokenize_throughput.py                      # 24 MB, vocab 32000, best of 3
    python bench/tokenize_throughput.py --mb 48 --repeats 5 --json runs/bench/tokenize.json
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402 - the environment above must be set before tokenizers is imported
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from array import array  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tiktoken  # noqa: E402
import tokenizers  # noqa: E402

from curate.shards.bpe import load_tokenizer, train_byte_level_bpe  # noqa: E402
from curate.shards.encoders import FastPathUnavailable, HFEncoder, tiktoken_encoding  # noqa: E402
from curate.shards.format import HEADER, MAGIC, VERSION, dtype_code, token_dtype  # noqa: E402
from curate.shards.writer import IndexedShardWriter  # noqa: E402
from curate.stages.tokenize import encode_into  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000
VERIFY_BYTES = 1_000_000
PASSAGES = {
    "en": "The history of the old harbour town is long and full of surprises. Many people who visit it for "
    "the first time are amazed by the stone houses and the narrow streets that wind between them. It's "
    "said that the fishermen's guild, founded in 1642, still meets every Thursday evening.",
    "de": "Die Geschichte der alten Hafenstadt ist lang und voller Überraschungen. Viele Besucher staunen "
    "über die steinernen Häuser und die engen Gassen, die sich zwischen ihnen hindurchschlängeln.",
    "fr": "L'histoire de la vieille ville portuaire est longue et pleine de surprises. Beaucoup de visiteurs "
    "s'émerveillent devant les maisons de pierre et les ruelles étroites qui serpentent entre elles.",
    "es": "La historia del antiguo pueblo portuario es larga y llena de sorpresas. Muchos visitantes se "
    "asombran ante las casas de piedra y las estrechas calles que serpentean entre ellas.",
    "ru": "История старого портового города длинная и полна неожиданностей. Многие гости удивляются "
    "каменным домам и узким улочкам, которые извиваются между ними.",
    "zh": "这个古老港口城镇的历史悠久，充满了惊喜。许多第一次来访的人都对石头房子和蜿蜒其间的狭窄街道感到惊叹。",
    "ja": "古い港町の歴史は長く、驚きに満ちています。初めて訪れる人の多くは、石造りの家々とその間を縫うように続く細い路地に驚かされます。",
}
LANGUAGE_WEIGHTS = {"en": 0.45, "de": 0.1, "fr": 0.1, "es": 0.1, "ru": 0.1, "zh": 0.08, "ja": 0.07}
NO_SPACES = {"zh", "ja"}


def pool_texts() -> tuple[dict[str, list[str]], str]:
    """Words per language: from the curated sample when it exists, plus the built-in passages."""
    texts = {lang: [p] for lang, p in PASSAGES.items()}
    files = sorted(glob.glob(str(REPO_ROOT / "output" / "web" / "dataset" / "*.parquet")))
    source = "built-in passages"
    if files:
        frame = pd.concat(pd.read_parquet(f, columns=["text", "lang"]) for f in files)
        for lang, text in zip(frame["lang"], frame["text"], strict=True):
            texts.setdefault(lang, []).append(text)
        source = f"{len(frame)} curated documents from output/web/dataset + built-in passages"
    words = {}
    for lang, parts in texts.items():
        joined = " ".join(parts)
        # Space-free scripts: 1-3 character "words" from runs of letters, as a segmenter would give.
        if lang in NO_SPACES:
            runs = re.findall(r"\w+", joined)
            words[lang] = [r[i : i + 2] for r in runs for i in range(0, len(r), 2)]
        else:
            words[lang] = re.findall(r"\w+", joined)
    return words, source


def lexicon(words: list[str], rng: np.random.Generator, size: int) -> list[str]:
    """The pool's words by frequency, then pseudo-words (head of one + tail of another) up to `size`."""
    counts = pd.Series(words).value_counts()
    known = list(counts.index)
    heads = [w[: (len(w) + 1) // 2] for w in known]
    tails = [w[(len(w) + 1) // 2 :] for w in known]
    made = {h + t for h, t in zip(rng.choice(heads, size * 2), rng.choice(tails, size * 2), strict=True)}
    return (known + sorted(made - set(known)))[:size]


def generate(target_bytes: int, seed: int) -> tuple[list[str], str]:
    words, source = pool_texts()
    rng = np.random.default_rng(seed)
    langs = [lang for lang in LANGUAGE_WEIGHTS if lang in words]
    weights = np.array([LANGUAGE_WEIGHTS[lang] for lang in langs])
    lexicons = {lang: np.array(lexicon(words[lang], rng, 50_000)) for lang in langs}
    zipf = {}
    for lang, lex in lexicons.items():
        p = 1.0 / np.arange(1, lex.size + 1) ** 1.05
        zipf[lang] = p / p.sum()
    docs, total = [], 0
    while total < target_bytes:
        lang = langs[rng.choice(len(langs), p=weights / weights.sum())]
        sentences = []
        for _ in range(int(rng.integers(3, 40))):
            picked = lexicons[lang][
                rng.choice(lexicons[lang].size, size=int(rng.integers(4, 25)), p=zipf[lang])
            ]
            if lang in NO_SPACES:
                sentences.append("".join(picked) + "。")
            else:
                sentence = " ".join(picked)
                if rng.random() < 0.2:
                    sentence += f", {int(rng.integers(0, 10_000))}"
                sentences.append(sentence[:1].upper() + sentence[1:] + rng.choice([".", ".", ".", "?", "!"]))
        doc = "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5))
        docs.append(doc)
        total += len(doc.encode())
    return docs, source


def batches(texts: list[str]):
    for start in range(0, len(texts), BATCH):
        yield texts[start : start + BATCH]


def curate_setup(tokenizer_path: Path) -> tuple:
    """Once per worker process: load the tokenizer, build and self-check the tiktoken encoding."""
    tokenizer = load_tokenizer(tokenizer_path)
    try:
        fast = tiktoken_encoding(tokenizer)
    except FastPathUnavailable as why:
        fast = why
    return HFEncoder(tokenizer), fast


def run_curate(setup: tuple, texts: list[str], prefix: Path, eod: int, dtype) -> dict:
    """One encode task's work: verify tiktoken on the first 1 MB, encode, append EOD, write .bin/.idx."""
    reference, fast = setup
    with IndexedShardWriter(prefix, dtype) as writer:
        outcome = encode_into(writer, batches(texts), "auto", reference, fast, eod, VERIFY_BYTES)
    return {"tokens": writer.tokens, "encoder": outcome["encoder"], "reason": outcome["reason"]}


def run_baseline(tokenizer, texts: list[str], prefix: Path, eod: int, dtype) -> dict:
    """encode_batch + a per-document Python list → array('H'/'i') writer, the .idx from Python loops."""
    typecode = "H" if np.dtype(dtype).itemsize == 2 else "i"
    lengths = []
    with open(f"{prefix}.bin", "wb") as out:
        for batch in batches(texts):
            for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
                ids = encoding.ids + [eod]
                out.write(array(typecode, ids).tobytes())
                lengths.append(len(ids))
    pointers, position = array("q"), 0
    for length in lengths:
        pointers.append(position)
        position += length * np.dtype(dtype).itemsize
    with open(f"{prefix}.idx", "wb") as out:
        out.write(HEADER.pack(MAGIC, VERSION, dtype_code(dtype), len(lengths), len(lengths) + 1))
        out.write(array("i", lengths).tobytes())
        out.write(pointers.tobytes())
        out.write(array("q", range(len(lengths) + 1)).tobytes())
    return {"tokens": sum(lengths)}


def timed(fn, *args) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result | {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    model = models[0] if models else "unknown (no /proc/cpuinfo)"
    return {
        "cpu": model,
        "cores_online": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "tokenizers": tokenizers.__version__,
        "tiktoken": getattr(tiktoken, "__version__", "?"),
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=24, help="MB of generated text (default 24)")
    parser.add_argument("--vocab-size", type=int, default=32_000, help="BPE trained when no --tokenizer")
    parser.add_argument("--tokenizer", help="an HF tokenizer.json instead of training one")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    info = machine()
    print(
        f"machine: {info['cpu']} · {info['cores_usable']} usable of {info['cores_online']} cores · "
        f"{info['date']}"
    )
    print(
        f"python {info['python']} · tokenizers {info['tokenizers']} · tiktoken {info['tiktoken']} · "
        f"numpy {info['numpy']}"
    )
    print(
        "one thread per side (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false); the machine may be shared"
    )
    texts, source = generate(int(args.mb * 1e6), args.seed)
    text_bytes = sum(len(t.encode()) for t in texts)
    print(f"text: {len(texts):,} documents, {text_bytes / 1e6:.1f} MB, from {source}")

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.tokenizer:
            tokenizer_path = Path(args.tokenizer)
        else:
            tokenizer_path = work / "tokenizer.json"
            started, budget, sample = time.perf_counter(), 8_000_000, []
            for text in texts:
                sample.append(text)
                budget -= len(text.encode())
                if budget <= 0:
                    break
            specials = ["<|endoftext|>", "<|pad|>"]
            train_byte_level_bpe(sample, args.vocab_size, 2, specials).save(str(tokenizer_path))
            print(f"tokenizer: byte-level BPE trained on 8 MB in {time.perf_counter() - started:.1f} s")
        tokenizer = load_tokenizer(tokenizer_path)
        vocab = tokenizer.get_vocab_size(with_added_tokens=True)
        eod, dtype = tokenizer.token_to_id("<|endoftext|>"), token_dtype(vocab)
        print(f"vocab {vocab:,} · tokens stored as {dtype.name}")

        setup = {
            "curate": timed(lambda: {"state": curate_setup(tokenizer_path)}),
            "baseline": timed(lambda: {"state": load_tokenizer(tokenizer_path)}),
        }
        runs = {"curate": [], "baseline": []}
        for _ in range(args.repeats):
            state = setup["curate"]["state"]
            runs["curate"].append(timed(run_curate, state, texts, work / "ours", eod, dtype))
            state = setup["baseline"]["state"]
            runs["baseline"].append(timed(run_baseline, state, texts, work / "naive", eod, dtype))
            for suffix in (".bin", ".idx"):
                ours, naive = (work / f"ours{suffix}").read_bytes(), (work / f"naive{suffix}").read_bytes()
                assert ours == naive, f"{suffix} files differ between the two sides"

    tokens = runs["curate"][0]["tokens"]
    best = {side: min(r, key=lambda r: r["cpu_s"]) for side, r in runs.items()}
    print(f"\n{tokens:,} tokens per run; .bin and .idx byte-identical on both sides; best of {args.repeats}")
    print(
        f"{'side':<10}{'setup s':>9}{'wall s':>9}{'CPU s':>9}"
        f"{'tokens/s (wall)':>18}{'tokens/s/core (CPU)':>22}"
    )
    for side, r in best.items():
        print(
            f"{side:<10}{setup[side]['cpu_s']:>9.2f}{r['wall_s']:>9.2f}{r['cpu_s']:>9.2f}"
            f"{tokens / r['wall_s']:>18,.0f}{tokens / r['cpu_s']:>22,.0f}"
        )
    ratio_cpu = best["baseline"]["cpu_s"] / best["curate"]["cpu_s"]
    ratio_wall = best["baseline"]["wall_s"] / best["curate"]["wall_s"]
    with_setup = (best["baseline"]["cpu_s"] + setup["baseline"]["cpu_s"]) / (
        best["curate"]["cpu_s"] + setup["curate"]["cpu_s"]
    )
    print(
        f"curate / baseline: {ratio_cpu:.2f}x per core (CPU time), {ratio_wall:.2f}x wall; "
        f"{with_setup:.2f}x counting each side's one-time setup (per worker process, not per shard)"
    )
    print(f"curate encoder: {best['curate']['encoder']} ({best['curate']['reason']})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        setup_s = {side: {k: v for k, v in t.items() if k != "state"} for side, t in setup.items()}
        result = {"machine": info, "documents": len(texts), "text_bytes": text_bytes, "tokens": tokens,
                  "vocab_size": vocab, "setup": setup_s, "runs": runs, "ratio_cpu": ratio_cpu,
                  "ratio_wall": ratio_wall, "ratio_with_setup": with_setup}  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
