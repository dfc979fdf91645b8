"""Text extraction in a child process, so a pathological page can be cut off after a time limit.

A Python thread cannot be interrupted and signal alarms only work on the main thread (Dask runs tasks
in worker threads), so the only real time limit is a process that can be killed. The child is
long-lived: each document costs one pipe round trip (tens of microseconds next to milliseconds of
extraction). It is started with `subprocess` rather than `multiprocessing` because Dask worker
processes are daemonic and may not fork `multiprocessing` children.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import time

_HEADER = struct.Struct("<I")


class ExtractTimeout(Exception):
    """The child did not answer within the per-document limit (it has been killed and restarted)."""


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, remaining = [], n
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise ExtractTimeout
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("extraction child exited")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write_frame(stream, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


class ExtractSandbox:
    """A killable child process running trafilatura with fixed options."""

    def __init__(self, options: dict) -> None:
        self.options = options
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "curate.extract_sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # trafilatura's per-page warnings; failures come back as replies
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        _write_frame(proc.stdin, pickle.dumps(self.options))
        return proc

    def extract(self, html: str, timeout: float) -> str | None:
        """Extracted text of one page, None when trafilatura finds nothing; ExtractTimeout past `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        try:
            _write_frame(self.proc.stdin, html.encode("utf-8", "surrogatepass"))
            fd = self.proc.stdout.fileno()
            deadline = time.monotonic() + timeout
            (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
            ok, value = pickle.loads(_read_exact(fd, size, None))
        except (ExtractTimeout, EOFError, BrokenPipeError):
            self.close()
            raise ExtractTimeout from None
        if not ok:
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __del__(self) -> None:
        self.close()


def _serve() -> None:
    import trafilatura

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def read_frame() -> bytes | None:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        return stdin.read(_HEADER.unpack(header)[0])

    options = pickle.loads(read_frame())
    while (frame := read_frame()) is not None:
        html = frame.decode("utf-8", "surrogatepass")
        try:
            reply = (True, trafilatura.extract(html, **options))
        except Exception as err:  # noqa: BLE001 - reported to the parent as a counted failure
            reply = (False, f"{type(err).__name__}: {err}")
        _write_frame(stdout, pickle.dumps(reply))


if __name__ == "__main__":
    _serve()
