"""Continuous batching: which sequences run in the next step.

Each step is either a prefill of waiting sequences or one decode token for every running sequence, so
requests join between decode steps and leave as soon as they finish. Prefill goes first whenever a waiting
sequence fits (first come, first served, up to `max_num_batched_tokens` prompt tokens and `max_num_seqs`
running), which keeps the decode batch as full as memory allows. When a decode step finds no free block for
a sequence's next token, the newest running sequence is preempted: its blocks are freed and it goes back to
the front of the queue, to be prefilled again (prompt and output so far) when blocks free up. Recomputing
costs one prefill; keeping a swap space would cost host memory and copies for a rare case.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from train.serve.block_manager import BlockManager
from train.serve.config import EngineConfig
from train.serve.sequence import Sequence, Status


class QueueFull(RuntimeError):
    """The waiting queue is at `max_waiting`: the request is refused rather than left to wait unbounded."""


@dataclass(frozen=True)
class Batch:
    seqs: list[Sequence]
    is_prefill: bool


class Scheduler:
    """The waiting queue (bounded, FIFO) and the running batch."""

    def __init__(self, cfg: EngineConfig, block_manager: BlockManager) -> None:
        self.cfg = cfg
        self.block_manager = block_manager
        self.waiting: deque[Sequence] = deque()
        self.running: deque[Sequence] = deque()
        self.preemptions = 0

    def add(self, seq: Sequence) -> None:
        """Queue a sequence; the caller checks `room()` first (preempted sequences come back regardless)."""
        self.waiting.append(seq)

    def room(self) -> int:
        """Requests the waiting queue takes before it is full."""
        return self.cfg.max_waiting - len(self.waiting)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> Batch | None:
        """The next step's batch, or None when there is nothing to run."""
        prefill = self._admit()
        if prefill:
            return Batch(prefill, is_prefill=True)
        decode = self._reserve_decode_slots()
        return Batch(decode, is_prefill=False) if decode else None

    def finish(self, seq: Sequence, reason: str) -> None:
        """Take a running sequence out of the batch and free its blocks."""
        self.running.remove(seq)
        self._retire(seq, reason)

    def abort(self, request_id: str) -> Sequence | None:
        """Drop a request wherever it is (a client went away); returns it, or None if it is not here."""
        for queue in (self.waiting, self.running):
            for seq in queue:
                if seq.request_id == request_id:
                    queue.remove(seq)
                    self._retire(seq, "abort")
                    return seq
        return None

    def _admit(self) -> list[Sequence]:
        batch: list[Sequence] = []
        tokens = 0
        while self.waiting and len(self.running) < self.cfg.max_num_seqs:
            seq = self.waiting[0]
            if tokens + len(seq) > self.cfg.max_num_batched_tokens or not self.block_manager.can_fit(seq):
                break
            self.waiting.popleft()
            self.block_manager.fit(seq)
            seq.status = Status.RUNNING
            self.running.append(seq)
            batch.append(seq)
            tokens += len(seq)
        return batch

    def _reserve_decode_slots(self) -> list[Sequence]:
        """A KV slot for each running sequence's newest token, preempting the newest sequences if short."""
        batch: list[Sequence] = []
        while self.running:
            seq = self.running.popleft()
            while not self.block_manager.can_fit(seq):
                if self.running:
                    self._preempt(self.running.pop())
                else:
                    self._preempt(seq)
                    break
            else:
                self.block_manager.fit(seq)
                batch.append(seq)
        self.running.extend(batch)
        return batch

    def _preempt(self, seq: Sequence) -> None:
        self.preemptions += 1
        self.block_manager.free(seq)
        seq.status = Status.WAITING
        self.waiting.appendleft(seq)

    def _retire(self, seq: Sequence, reason: str) -> None:
        self.block_manager.free(seq)
        seq.status = Status.FINISHED
        seq.finish_reason = reason
