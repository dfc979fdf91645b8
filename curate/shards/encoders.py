"""Text to token ids: HF `tokenizers`, or tiktoken built from the same BPE once it is shown to agree.

tiktoken's `Encoding` is constructed from our byte-level vocabulary (mergeable ranks = token ids, which
for a trained BPE follow the merge order) and the ByteLevel pre-tokenizer's split regex. The two
algorithms can still disagree: tiktoken emits a pre-token that is itself in the vocabulary as one token,
and merges any adjacent pair whose bytes form a token, where HF applies only its listed merges. So the
fast path is used only after (1) a check of every whole-pre-token vocabulary entry and (2) identical ids
on a sample of the data being encoded; HF stays the reference.
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np
import tiktoken
from tokenizers import Tokenizer

# The ByteLevel pre-tokenizer's regex in HF tokenizers (GPT-2's split), verbatim.
BYTE_LEVEL_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


class FastPathUnavailable(ValueError):
    """tiktoken cannot reproduce this tokenizer; the message says why."""


class Encoder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text (uint32), no special tokens added."""
        ...


class HFEncoder:
    """HF tokenizers' batch encoder: the reference."""

    name = "hf"

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        # encode_batch_fast skips the character offsets, which shards do not store.
        encodings = self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [np.array(e.ids, dtype=np.uint32) for e in encodings]


class TiktokenEncoder:
    """tiktoken's BPE on our vocabulary: ids come back as numpy arrays, no Python int per token."""

    name = "tiktoken"

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        # Special-token text is plain text here (none allowed, none disallowed), as with HF's
        # encode_special_tokens.
        return [self.encoding.encode_to_numpy(text, disallowed_special=()) for text in texts]


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted (what ByteLevel uses)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = [b for b in range(256) if b not in printable]
    chars = {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(shifted)}
    return {c: b for b, c in chars.items()}


def _merges(model: dict) -> list[tuple[str, str]]:
    # tokenizers writes merges as ["a", "b"] pairs; files from before 0.20 as "a b" strings.
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]


def _check_structure(spec: dict) -> None:
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    problems = [
        (spec.get("normalizer") is not None, "it has a normalizer"),
        (pre.get("type") != "ByteLevel", "its pre-tokenizer is not ByteLevel"),
        (pre.get("add_prefix_space", False), "its ByteLevel pre-tokenizer adds a prefix space"),
        (not pre.get("use_regex", True), "its ByteLevel pre-tokenizer does not split with the GPT-2 regex"),
        (model.get("type") != "BPE", "its model is not BPE"),
        (model.get("dropout") is not None, "it uses BPE dropout"),
        (
            bool(model.get("continuing_subword_prefix") or model.get("end_of_word_suffix")),
            "it marks subwords",
        ),
        (any(not t.get("special") for t in spec.get("added_tokens", [])), "it has non-special added tokens"),
    ]
    for failed, why in problems:
        if failed:
            raise FastPathUnavailable(why)


def _mergeable_ranks(spec: dict) -> dict[bytes, int]:
    model = spec["model"]
    added = {t["id"] for t in spec.get("added_tokens", [])}
    decoder = _byte_decoder()
    ranks: dict[bytes, int] = {}
    for token, token_id in model["vocab"].items():
        if token_id in added:
            continue
        if any(c not in decoder for c in token):
            raise FastPathUnavailable(f"vocabulary entry {token!r} is not byte-level")
        ranks[bytes(decoder[c] for c in token)] = token_id
    missing = 256 - sum(1 for b in ranks if len(b) == 1)
    if missing:
        raise FastPathUnavailable(f"{missing} of the 256 single bytes have no token")
    # tiktoken merges by the rank (= id) of the result: HF's merge order must be the id order.
    vocab = model["vocab"]
    merged_ids = np.array([vocab.get(a + b, -1) for a, b in _merges(model)], dtype=np.int64)
    if merged_ids.size and (merged_ids.min() < 0 or np.any(np.diff(merged_ids) <= 0)):
        raise FastPathUnavailable("the ids of merged tokens do not follow the merge order")
    return ranks


def _check_whole_pieces(tokenizer: Tokenizer, ranks: dict[bytes, int]) -> None:
    """Every entry that is a whole pre-token must be what HF gives for it (tiktoken emits it as is)."""
    candidates = []
    for token_bytes, token_id in ranks.items():
        try:
            text = token_bytes.decode("utf-8")
        except UnicodeDecodeError:
            continue  # part of a character: never a whole pre-token
        if len(tokenizer.pre_tokenizer.pre_tokenize_str(text)) == 1:
            candidates.append((text, token_id))
    encodings = tokenizer.encode_batch_fast([t for t, _ in candidates], add_special_tokens=False)
    for (text, token_id), encoding in zip(candidates, encodings, strict=True):
        if encoding.ids != [token_id]:
            raise FastPathUnavailable(
                f"HF encodes the vocabulary entry {text!r} (id {token_id}) as {encoding.ids}; tiktoken "
                "would emit it whole"
            )


def tiktoken_encoding(tokenizer: Tokenizer) -> tiktoken.Encoding:
    """A tiktoken `Encoding` equivalent to `tokenizer`, or FastPathUnavailable saying why there is none."""
    spec = json.loads(tokenizer.to_str())
    _check_structure(spec)
    ranks = _mergeable_ranks(spec)
    _check_whole_pieces(tokenizer, ranks)
    # The special tokens are registered although documents never encode them: without any, tiktoken's
    # special-token scan is measured ~1.5x slower on the same text.
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    return tiktoken.Encoding(
        "curate-byte-level-bpe", pat_str=BYTE_LEVEL_SPLIT, mergeable_ranks=ranks, special_tokens=specials
    )


def first_mismatch(texts: list[str], fast: Encoder, reference: Encoder) -> str | None:
    """Where `fast` and `reference` first give different ids on `texts`, or None if they agree on all."""
    for n, (a, b) in enumerate(zip(fast.encode(texts), reference.encode(texts), strict=True)):
        if not np.array_equal(a, b):
            common = min(a.size, b.size)
            differ = np.flatnonzero(a[:common] != b[:common])
            at = int(differ[0]) if differ.size else common
            return (
                f"document {n} differs at token {at}: {fast.name} {a[at : at + 3].tolist()}, "
                f"{reference.name} {b[at : at + 3].tolist()}"
            )
    return None


def choose_encoder(
    mode: str, reference: HFEncoder, fast: tiktoken.Encoding | FastPathUnavailable, sample: list[str]
) -> tuple[Encoder, str]:
    """The encoder for `mode` (auto|hf|tiktoken), verifying tiktoken on `sample` first, and why it was chosen.

    `auto` falls back to HF when tiktoken is unavailable or disagrees; `tiktoken` raises instead, since
    encoding differently from the tokenizer file would silently corrupt the shards.
    """
    if mode == "hf":
        return reference, "configured"
    if isinstance(fast, FastPathUnavailable):
        if mode == "tiktoken":
            raise FastPathUnavailable(f"encoder 'tiktoken' cannot reproduce this tokenizer: {fast}")
        return reference, f"tiktoken unavailable: {fast}"
    candidate = TiktokenEncoder(fast)
    mismatch = first_mismatch(sample, candidate, reference)
    if mismatch is not None:
        if mode == "tiktoken":
            raise FastPathUnavailable(f"encoder 'tiktoken' disagrees with the tokenizer file: {mismatch}")
        return reference, f"tiktoken disagreed with hf on the verification sample: {mismatch}"
    return candidate, "ids identical to hf on the verification sample"


def encode_documents(encoder: Encoder, texts: list[str], eod_id: int) -> tuple[np.ndarray, np.ndarray]:
    """All documents' ids back to back, each followed by EOD, and each document's length (EOD included)."""
    arrays = encoder.encode(texts)
    eod = np.array([eod_id], dtype=np.uint32)
    lengths = np.fromiter((a.size + 1 for a in arrays), dtype=np.int64, count=len(arrays))
    if not arrays:
        return np.zeros(0, dtype=np.uint32), lengths
    return np.concatenate([piece for a in arrays for piece in (a, eod)]), lengths
