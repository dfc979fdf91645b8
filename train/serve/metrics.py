"""Prometheus metrics of the server, in a registry of its own (several servers can share a process).

Counters and histograms follow Prometheus' conventions (`_total`, seconds); throughput is also given as
a gauge over the last WINDOW_S seconds, for dashboards without `rate()`.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from train.serve.scheduler import Scheduler

WINDOW_S = 10.0
# Seconds: from a few milliseconds (a small model's decode step) to minutes (a long queue).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServeMetrics:
    """Queue depth, running requests, KV blocks, tokens, tokens/s, TTFT and inter-token latency."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge("serve_requests_waiting", "Requests in the queue.", registry=r).set_function(
            lambda: len(scheduler.waiting)
        )
        Gauge("serve_requests_running", "Requests in the running batch.", registry=r).set_function(
            lambda: len(scheduler.running)
        )
        Gauge("serve_kv_blocks_free", "Free KV-cache blocks.", registry=r).set_function(
            lambda: scheduler.block_manager.num_free_blocks
        )
        Gauge("serve_kv_blocks_total", "KV-cache blocks.", registry=r).set(scheduler.block_manager.num_blocks)
        Gauge(
            "serve_generation_tokens_per_second",
            f"Generated tokens per second over the last {WINDOW_S:g} s.",
            registry=r,
        ).set_function(self._tokens_per_second)
        self.prompt_tokens = Counter("serve_prompt_tokens", "Prompt tokens prefilled.", registry=r)
        self.generation_tokens = Counter("serve_generation_tokens", "Tokens generated.", registry=r)
        self.preemptions = Counter(
            "serve_preemptions", "Sequences preempted for lack of KV blocks.", registry=r
        )
        self.requests = Counter("serve_requests", "Finished requests.", ["finish_reason"], registry=r)
        self.rejected = Counter(
            "serve_requests_rejected", "Requests refused: the queue was full.", registry=r
        )
        self.ttft = Histogram(
            "serve_time_to_first_token_seconds",
            "From arrival to the first generated token.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "serve_inter_token_latency_seconds",
            "Between consecutive tokens of a request.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens generated in a step)

    def record_step(self, now: float, tokens: int) -> None:
        self.generation_tokens.inc(tokens)
        with self._lock:
            self._recent.append((now, tokens))
            while self._recent and self._recent[0][0] < now - WINDOW_S:
                self._recent.popleft()

    def _tokens_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            return sum(n for t, n in self._recent if t >= now - WINDOW_S) / WINDOW_S
