"""The KV cache's blocks: a free list, and each sequence's block table.

The cache is a pool of `num_blocks` blocks of `block_size` token slots. A sequence of n tokens holds
ceil(n / block_size) blocks, listed in its block table in token order; token t lives in slot t % block_size
of block `block_table[t // block_size]`. Blocks are not shared between sequences (no prefix caching), so a
block has one owner and needs no reference count.
"""

from __future__ import annotations

from collections import deque

from train.serve.sequence import Sequence


class BlockManager:
    """Hands out KV-cache blocks to sequences as they grow and takes them back when they end."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._free: deque[int] = deque(range(num_blocks))

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def can_fit(self, seq: Sequence, extra: int = 0) -> bool:
        """Whether the free blocks cover all of `seq`'s tokens and `extra` more."""
        return self.missing(seq, extra) <= len(self._free)

    def fit(self, seq: Sequence, extra: int = 0) -> None:
        """Extend `seq`'s block table to cover all its tokens and `extra` more (call `can_fit` first)."""
        for _ in range(self.missing(seq, extra)):
            seq.block_table.append(self._free.popleft())

    def free(self, seq: Sequence) -> None:
        self._free.extend(seq.block_table)
        seq.block_table.clear()

    def missing(self, seq: Sequence, extra: int = 0) -> int:
        """Blocks `seq` lacks for its tokens and `extra` more."""
        return max(0, self.blocks_for(len(seq) + extra) - len(seq.block_table))
