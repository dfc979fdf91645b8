"""The engine on a background thread, for the asyncio HTTP server.

Handlers never touch the scheduler: `submit` checks a request and hands it over, `abort` asks for it to be
dropped, and the engine thread applies both between steps. Each step's outputs go back to the handlers'
event loop through one asyncio queue per request. The waiting queue's bound is checked at submission, so
a full server answers at once (429) instead of holding the connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from train.serve.engine import LLMEngine, RequestError, StepOutput
from train.serve.metrics import ServeMetrics
from train.serve.sampling_params import SamplingParams
from train.serve.scheduler import QueueFull
from train.serve.sequence import Sequence

log = logging.getLogger(__name__)


class EngineFailed(RuntimeError):
    """A step raised: the requests in flight were dropped (the server log has the traceback)."""


class GenerationStream:
    """The outputs of one API request's sequences, in the order the engine makes them; `close` aborts the
    sequences still unfinished (a client that went away must not keep its KV blocks)."""

    def __init__(self, engine: AsyncEngine, request_ids: list[str]) -> None:
        self.request_ids = request_ids
        self.queue: asyncio.Queue = asyncio.Queue()
        self._engine = engine
        self._unfinished = set(request_ids)

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> StepOutput:
        if not self._unfinished:
            raise StopAsyncIteration
        item = await self.queue.get()
        if isinstance(item, Exception):
            self._unfinished.clear()
            raise EngineFailed("the engine failed on this request; the server log says why") from item
        if item.finished:
            self._unfinished.discard(item.seq.request_id)
        return item

    def close(self) -> None:
        for request_id in self._unfinished:
            self._engine.abort(request_id)
        self._unfinished.clear()


class AsyncEngine:
    """`submit` from a coroutine, then iterate the returned stream; `close` it when done."""

    def __init__(self, engine: LLMEngine) -> None:
        self.engine = engine
        self.metrics = ServeMetrics(engine.scheduler)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[Sequence] = []
        self._aborts: list[str] = []
        self._streams: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._last_token_time: dict[str, float] = {}
        self._preemptions_seen = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="serve-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, requests: list[tuple[list[int], SamplingParams]]) -> GenerationStream:
        """Queue the sequences of one API request, all or none: RequestError if one cannot be served,
        QueueFull if the queue has no room for all of them."""
        self.check_size(len(requests))
        seqs = [self.engine.make_sequence(prompt, params) for prompt, params in requests]
        stream = GenerationStream(self, [seq.request_id for seq in seqs])
        with self._lock:
            if self.engine.scheduler.room() - len(self._pending) < len(seqs):
                self.metrics.rejected.inc()
                raise QueueFull(f"the queue is full ({self.engine.config.max_waiting} requests waiting)")
            self._pending.extend(seqs)
            for seq in seqs:
                self._streams[seq.request_id] = (asyncio.get_running_loop(), stream.queue)
        self.metrics.prompt_tokens.inc(sum(len(seq) for seq in seqs))
        self._wake.set()
        return stream

    def check_size(self, count: int) -> None:
        """RequestError if an API request of `count` sequences could never be queued (max_waiting)."""
        max_waiting = self.engine.config.max_waiting
        if count > max_waiting:
            # Refused for good, not 429: no amount of waiting makes room for it.
            raise RequestError(
                f"The request asks for {count} completions (prompts times n); this server queues at "
                f"most {max_waiting} (max_waiting).",
                "n",
            )

    def abort(self, request_id: str) -> None:
        with self._lock:
            self._aborts.append(request_id)
            self._streams.pop(request_id, None)
        self._wake.set()

    def _run(self) -> None:
        engine = self.engine
        while not self._stopping:
            self._wake.clear()
            with self._lock:
                pending, self._pending = self._pending, []
                aborts, self._aborts = self._aborts, []
            for seq in pending:
                engine.scheduler.add(seq)
            for request_id in aborts:
                engine.abort(request_id)
                self._last_token_time.pop(request_id, None)
            if not engine.has_unfinished():
                self._wake.wait()
                continue
            try:
                outputs = engine.step()
            except Exception as err:
                log.exception("engine step failed; dropping the requests in flight")
                self._fail_all(err)
                continue
            self._deliver(outputs, time.monotonic())

    def _deliver(self, outputs: list[StepOutput], now: float) -> None:
        with self._lock:
            targets = [self._streams.get(out.seq.request_id) for out in outputs]
            for out in outputs:
                if out.finished:
                    self._streams.pop(out.seq.request_id, None)
        for target, out in zip(targets, outputs, strict=True):
            if target is not None:
                loop, queue = target
                loop.call_soon_threadsafe(queue.put_nowait, out)
        self._observe(outputs, now)

    def _observe(self, outputs: list[StepOutput], now: float) -> None:
        self.metrics.record_step(now, len(outputs))
        for out in outputs:
            request_id = out.seq.request_id
            previous = self._last_token_time.pop(request_id, None)
            if previous is None:
                self.metrics.ttft.observe(now - out.seq.arrival_time)
            else:
                self.metrics.itl.observe(now - previous)
            if out.finished:
                self.metrics.requests.labels(out.seq.finish_reason).inc()
            else:
                self._last_token_time[request_id] = now
        preemptions = self.engine.scheduler.preemptions
        self.metrics.preemptions.inc(preemptions - self._preemptions_seen)
        self._preemptions_seen = preemptions

    def _fail_all(self, err: Exception) -> None:
        scheduler = self.engine.scheduler
        for seq in [*scheduler.waiting, *scheduler.running]:
            self.engine.abort(seq.request_id)
        self._last_token_time.clear()
        with self._lock:
            streams, self._streams = self._streams, {}
            self._pending = []  # submitted but not queued yet: their streams are among `streams`
        for loop, queue in streams.values():
            loop.call_soon_threadsafe(queue.put_nowait, err)
