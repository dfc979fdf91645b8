"""fastText model files: a check that a file holds one whole model, and loading it once per process.

The stages that read a fastText model (`langid`, `classifier`) check it when their config is
validated (`curate validate`, and `curate run` before any work), so a wrong file fails the run at
once instead of dropping every document as a stage error.
"""

from __future__ import annotations

import mmap
import struct
import threading
from functools import cache
from pathlib import Path

from pydantic import ValidationInfo

from curate.file_hash import file_sha256

FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin/.ftz
FASTTEXT_VERSION = 12  # the newest format fastText writes (0.9.x)
PQ_CENTROIDS = 256  # fastText's product quantizer: 8-bit codes


class _Layout:
    """Little-endian reads over a model file that fail with the offset where the file ends too early."""

    def __init__(self, data) -> None:
        self.data, self.pos = data, 0

    def read(self, fmt: str) -> tuple:
        end = self.pos + struct.calcsize("<" + fmt)
        if end > len(self.data):
            raise ValueError(f"truncated: ends at byte {len(self.data):,}, inside the model")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos = end
        return values

    def skip(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError(f"truncated: ends at byte {len(self.data):,}, inside the model")
        self.pos += size

    def skip_string(self) -> None:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ValueError(f"truncated: ends at byte {len(self.data):,}, inside the dictionary")
        self.pos = end + 1

    def skip_matrix(self) -> None:
        (quantized,) = self.read("?")
        if not quantized:  # DenseMatrix: rows, columns, float32 values
            rows, cols = self.read("qq")
            self.skip(4 * rows * cols)
            return
        # QuantMatrix: qnorm, rows, columns, codes, product quantizer [, norm codes, norm quantizer]
        qnorm, rows, _, code_bytes = self.read("?qqi")
        self.skip(code_bytes)
        self.skip_quantizer()
        if qnorm:
            self.skip(rows)
            self.skip_quantizer()

    def skip_quantizer(self) -> None:
        dim, _, _, _ = self.read("iiii")  # dim, subquantizers, sub-dimension, last sub-dimension
        self.skip(4 * dim * PQ_CENTROIDS)


def check_fasttext_file(path: str) -> None:
    """Raise ValueError unless `path` holds one whole fastText model, walking fastText's save format.

    Layout (fastText 0.9 `FastText::saveModel`): magic, version; 12 int32 args and a double; the
    dictionary (sizes, then each entry as a NUL-terminated word, int64 count, int8 type; pruned ids);
    the input matrix and the output matrix, each dense or quantized.
    """
    with open(path, "rb") as fh:
        if Path(path).stat().st_size < 8:
            raise ValueError("not a fastText model: shorter than its 8-byte header")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            layout = _Layout(data)
            magic, version = layout.read("ii")
            if magic != FASTTEXT_MAGIC:
                raise ValueError("not a fastText model: wrong magic number")
            if not 0 < version <= FASTTEXT_VERSION:
                raise ValueError(
                    f"fastText format version {version}, this fastText reads up to {FASTTEXT_VERSION}"
                )
            layout.read("12id")
            entries, _, _, _, pruned = layout.read("iiiqq")
            if entries < 0:
                raise ValueError("corrupt dictionary: negative size")
            for _ in range(entries):
                layout.skip_string()
                layout.skip(9)  # int64 count, int8 entry type
            layout.skip(8 * max(pruned, 0))  # (int32, int32) pairs; -1 when not pruned
            layout.skip_matrix()
            layout.skip_matrix()
            if layout.pos != len(data):
                raise ValueError(f"{len(data) - layout.pos:,} unexpected bytes after the model's end")


def checked_model(path: str, fix: str):
    """The model at `path` after checking its layout and loading it; ValueError saying `fix` if not."""
    try:
        check_fasttext_file(path)
        return load_model(path, None)
    except (OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"model file {path!r} is not a usable fastText model ({err}); {fix}") from None


def check_sha256(path: str, expected: str) -> None:
    """Raise ValueError unless the file at `path` has sha256 `expected`."""
    if (actual := file_sha256(Path(path))) != expected:
        raise ValueError(
            f"{path} has sha256 {actual[:12]}…, not {expected[:12]}…: a different or damaged model"
        )


def model_sha256_matches(value: str | None, info: ValidationInfo) -> str | None:
    """Validator of a stage's `model_sha256`: the file at its `model_path` (declared above) has that hash."""
    path = info.data.get("model_path")
    if value is not None and path is not None:
        check_sha256(path, value)
    return value


_load_lock = threading.Lock()


@cache
def load_model(path: str, expected_sha256: str | None):
    """Load a fastText model once per process, after checking its hash when one is expected."""
    import fasttext

    if expected_sha256:
        check_sha256(path, expected_sha256)
    with _load_lock:
        return fasttext.load_model(path)
