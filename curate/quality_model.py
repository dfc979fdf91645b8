"""The fastText quality model: the text it reads, training on labeled documents, P(hq), evaluation.

Training data is either labeled JSONL (`{"text": ..., "label": "hq" | "lq"}`) or two sets of
documents, e.g. a run's `dataset/` (positives) and its filter `rejects/` (negatives). A document goes
to the held-out split by a hash of its text and the seed, so the split does not depend on file order
and a text never lands on both sides. fastText trains on one thread with a fixed seed, on examples
ordered by the same hash, so the same inputs give the same model file. The model and its metrics
(precision / recall / F1 on the held-out split) are written side by side.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import xxhash
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

LABELS = ("hq", "lq")
DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")


class TrainingDataError(ValueError):
    """Training inputs that cannot be used; the message says which and why."""


class TrainConfig(BaseModel):
    """fastText training and evaluation settings (`curate train-classifier` flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    valid_fraction: float = Field(0.1, ge=0, lt=1, description="Share of documents held out for evaluation.")
    seed: int = Field(42, description="Seed of the held-out split, the example order and fastText.")
    dim: int = Field(64, ge=1, description="Embedding size.")
    epoch: int = Field(5, ge=1, description="Passes over the training set.")
    lr: float = Field(0.1, gt=0, description="Learning rate.")
    word_ngrams: int = Field(2, ge=1, description="Longest word n-gram used as a feature.")
    min_count: int = Field(1, ge=1, description="Ignore words seen fewer times.")
    bucket: int = Field(
        2_000_000, ge=1, description="Hash buckets for word n-grams (the bulk of the model size)."
    )
    quantize: bool = Field(False, description="Quantize the model (a small .ftz file).")
    cutoff: int = Field(
        0, ge=0, description="With --quantize: keep only this many words and n-grams (0: all)."
    )
    threshold: float = Field(
        0.5, ge=0, le=1, description="P(hq) at or above which evaluation counts a doc as hq."
    )


@dataclass
class Examples:
    """Labeled texts, plus what was skipped on the way in."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def add(self, texts: list, label: str) -> None:
        for text in texts:
            if isinstance(text, str) and text.strip():
                self.texts.append(text)
                self.labels.append(label)
            else:
                self.skipped["empty_text"] = self.skipped.get("empty_text", 0) + 1


def model_text(text: str) -> str:
    """The one lowercased line fastText reads: a newline would end it, `__label__` would add a label."""
    return " ".join(text.replace("__label__", " ").lower().split())


def hq_probability(model, texts: list[str], label: str = "hq") -> np.ndarray:
    """P(`label`) for each text under a fastText classifier."""
    target = f"__label__{label}"
    if target not in model.get_labels():
        raise ValueError(f"the model has no label {label!r} (its labels: {model.get_labels()})")
    labels, probs = model.predict([model_text(t) for t in texts], k=-1)
    # fastText's softmax can round a hair above 1.
    return np.array(
        [
            min(dict(zip(ls, ps, strict=True)).get(target, 0.0), 1.0)
            for ls, ps in zip(labels, probs, strict=True)
        ]
    )


def expand_paths(spec: str) -> list[Path]:
    """A file, a directory (its Parquet/JSONL files, recursively) or a glob, as a sorted list of files."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES)]
    else:
        files = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
    if not files:
        raise TrainingDataError(f"{spec!r} matches no Parquet or JSONL file")
    return sorted(files)


def read_frame(path: Path, columns: list[str]) -> pd.DataFrame | None:
    """`columns` of a Parquet or JSONL(.gz) file; None when the file lacks one of them."""
    kind = "Parquet" if path.name.endswith(".parquet") else "JSON lines"
    try:
        if kind == "Parquet":
            if not set(columns) <= set(pq.read_schema(path).names):
                return None
            return pq.read_table(path, columns=columns).to_pandas()
        frame = pd.read_json(path, lines=True, dtype=False)
    except (OSError, ValueError) as err:  # pyarrow's and pandas' parse errors are ValueErrors
        raise TrainingDataError(f"{path}: not readable as {kind} ({err})") from None
    return frame[columns] if set(columns) <= set(frame.columns) else None


def load_examples(data: list[str], positive: list[str], negative: list[str]) -> Examples:
    """Examples from labeled JSONL files and/or positive and negative document sets."""
    examples = Examples()
    for spec in data:
        for path in expand_paths(spec):
            frame = read_frame(path, ["text", "label"])
            if frame is None:
                raise TrainingDataError(f"{path}: labeled data needs `text` and `label` fields")
            bad = sorted(set(frame["label"]) - set(LABELS))
            if bad:
                raise TrainingDataError(f"{path}: labels must be {' or '.join(LABELS)}, found {bad[:5]}")
            for label in LABELS:
                examples.add(frame.loc[frame["label"] == label, "text"].tolist(), label)
    for specs, label in ((positive, "hq"), (negative, "lq")):
        for spec in specs:
            for path in expand_paths(spec):
                frame = read_frame(path, ["text"])
                if frame is None:  # e.g. ingest rejects: records that never had text
                    examples.skipped["files_without_text"] = examples.skipped.get("files_without_text", 0) + 1
                    continue
                examples.add(frame["text"].tolist(), label)
    missing = [label for label in LABELS if label not in examples.labels]
    if missing:
        raise TrainingDataError(f"no {' or '.join(missing)} examples with text; both classes are needed")
    return examples


def split_key(text: str, seed: int) -> float:
    """A uniform number in [0, 1) from the text and the seed: the split and the example order."""
    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed=seed) / 2**64


def precision_recall_f1(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Scores of one class from boolean arrays; None where a ratio has no denominator."""
    tp = int((truth & predicted).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / int(truth.sum()) if truth.any() else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(truth.sum())}


def evaluate(model, texts: list[str], labels: list[str], threshold: float) -> dict:
    """Precision / recall / F1 per class and accuracy, deciding hq at P(hq) >= threshold."""
    if not texts:
        return {"documents": 0, "accuracy": None, **{label: None for label in LABELS}}
    is_hq = np.array([label == "hq" for label in labels])
    predicted_hq = hq_probability(model, texts) >= threshold
    return {
        "documents": len(texts),
        "accuracy": float((is_hq == predicted_hq).mean()),
        "hq": precision_recall_f1(is_hq, predicted_hq),
        "lq": precision_recall_f1(~is_hq, ~predicted_hq),
    }


# glibc's mallopt parameter M_PERTURB: with byte 0xFF, every allocation is filled with 0x00.
_M_PERTURB, _ZERO_FILL = -6, 0xFF


@contextmanager
def zero_filled_allocations() -> Iterator[None]:
    """While fastText trains, make glibc hand out zero-filled memory.

    fasttext-numpy2 allocates the input matrix with `posix_memalign` and leaves it uninitialised, and
    `DenseMatrix::uniform` sizes its blocks for ten threads, so with `thread=1` nine tenths of the
    rows are never written before training reads them: whatever the heap held leaks into the model,
    giving "Encountered NaN" errors and different models from the same data (seen under valgrind and
    with MALLOC_PERTURB_). Zero-filled allocations restore upstream fastText's behaviour, where that
    memory is a zero-initialised std::vector.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        mallopt = None
    if mallopt is None or not mallopt(_M_PERTURB, _ZERO_FILL):
        log.warning("not glibc: fastText training may read uninitialised memory and not be reproducible")
        yield
        return
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)


def metrics_path(model_path: Path) -> Path:
    return model_path.with_name(f"{model_path.stem}.metrics.json")


def train(examples: Examples, out: Path, config: TrainConfig) -> dict:
    """Train on the non-held-out examples, save the model to `out`, evaluate, write the metrics JSON."""
    import fasttext

    keys = [split_key(t, config.seed) for t in examples.texts]
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    train_rows = [i for i in order if keys[i] >= config.valid_fraction]
    valid_rows = [i for i in order if keys[i] < config.valid_fraction]
    if not {examples.labels[i] for i in train_rows} >= set(LABELS):
        raise TrainingDataError("after holding out the evaluation split, one class has no training example")

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".train-") as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text(
            "".join(f"__label__{examples.labels[i]} {model_text(examples.texts[i])}\n" for i in train_rows),
            encoding="utf-8",
        )
        with zero_filled_allocations():
            model = fasttext.train_supervised(
                input=str(train_file),
                dim=config.dim,
                epoch=config.epoch,
                lr=config.lr,
                wordNgrams=config.word_ngrams,
                minCount=config.min_count,
                bucket=config.bucket,
                seed=config.seed,
                thread=1,  # fastText's Hogwild threads make training order, and so the model, vary
                verbose=0,
            )
            if config.quantize:
                model.quantize(
                    input=str(train_file), cutoff=config.cutoff, retrain=config.cutoff > 0, qnorm=True
                )
        tmp_model = Path(tmp) / out.name
        model.save_model(str(tmp_model))
        os.replace(tmp_model, out)

    def counts(rows: list[int]) -> dict[str, int]:
        return {label: sum(examples.labels[i] == label for i in rows) for label in LABELS}

    report = {
        "model": str(out),
        "model_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "train": {"documents": len(train_rows), **counts(train_rows)},
        "skipped": examples.skipped,
        "config": config.model_dump(),
        "threshold": config.threshold,
        "valid": evaluate(
            model,
            [examples.texts[i] for i in valid_rows],
            [examples.labels[i] for i in valid_rows],
            config.threshold,
        ),
    }
    metrics_path(out).write_text(json.dumps(report, indent=1) + "\n")
    return report
