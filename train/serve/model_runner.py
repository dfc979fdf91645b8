"""The forward pass of a `train.model.Transformer`'s weights over a paged KV cache.

The model's own forward recomputes every position; serving keeps each layer's K and V in a cache of
fixed-size blocks (block_manager.py) and computes only the new tokens: a batched prefill of whole prompts
(tokens of all sequences laid end to end, no padding), or one token per running sequence. The math is the
model's (RMSNorm in fp32, rotate-half RoPE from `rope_tables`, GQA, SwiGLU); q/k/v and gate/up are each
one matmul over concatenated weights, and the residual add rides in the output projections' matmul
(`addmm`). Each layer first writes the new tokens' k and v to their cache slots, then attends: prefill
over the prompt's own tokens, decode over everything the block table points to.

On CUDA, RoPE and the cache write are one Triton kernel and decode attention another
(triton_attention.py), the other elementwise functions are compiled (one fused kernel each), and decode
steps replay CUDA graphs captured per batch-size bucket: a step is a few hundred small kernels, and
launching them one by one from Python would take longer than running them. Steps of at most
`triton_matvec.MAX_ROWS` sequences, where a step is reading the weights and little else, go through
triton_matvec.py instead: each projection one kernel with its norm, RoPE, cache write, SiLU or residual
add fused in. A batch is padded up to its bucket with rows that read and write only a spare cache block
past the ones the block manager hands out."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from train.model import Transformer, apply_rope, rope_tables
from train.serve import attention
from train.serve.config import EngineConfig
from train.serve.sequence import Sequence

# The CPU's KV cache when num_kv_blocks is not given: enough for the model, without crowding the host.
CPU_KV_CACHE_BYTES = 1 << 30


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # train.model.RMSNorm's arithmetic, as a function of its weight so that one compiled kernel serves all.
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


def rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin)


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


@dataclass(frozen=True)
class HostTokens:
    """A step's token ids on their way to the host: `tolist()` waits for the copy (and so the step)."""

    tensor: torch.Tensor
    done: torch.cuda.Event | None

    def tolist(self) -> list[int]:
        if self.done is not None:
            self.done.synchronize()
        return self.tensor.tolist()


@dataclass
class _Layer:
    attn_norm: torch.Tensor
    wqkv: torch.Tensor
    wo: torch.Tensor
    ffn_norm: torch.Tensor
    w_gate_up: torch.Tensor
    w_down: torch.Tensor


def graph_buckets(max_num_seqs: int) -> list[int]:
    """Batch sizes that get a CUDA graph: 1, 2, 4, 8, then every 16 up to max_num_seqs."""
    sizes = {n for n in (1, 2, 4, 8) if n < max_num_seqs} | set(range(16, max_num_seqs, 16))
    return sorted(sizes | {max_num_seqs})


class ModelRunner:
    """Holds the weights and the KV cache on the device; `prefill` and `decode` return next-token logits."""

    def __init__(
        self, model: Transformer, cfg: EngineConfig, device: torch.device, dtype: torch.dtype
    ) -> None:
        mc = model.cfg
        self.device, self.dtype = device, dtype
        self.n_head, self.n_kv_head, self.head_dim = mc.n_head, mc.n_kv_head, mc.head_dim
        self.eps = mc.norm_eps
        self.block_size = cfg.block_size
        self.max_model_len = mc.max_seq_len
        self.vocab_size = mc.vocab_size
        self.table_width = -(-mc.max_seq_len // cfg.block_size)  # blocks of a full-length sequence

        def weight(*tensors: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.detach() for t in tensors]).to(device=device, dtype=dtype)

        self.layers = [
            _Layer(
                attn_norm=weight(b.attn_norm.weight),
                wqkv=weight(b.attn.wq.weight, b.attn.wk.weight, b.attn.wv.weight),
                wo=weight(b.attn.wo.weight),
                ffn_norm=weight(b.ffn_norm.weight),
                w_gate_up=weight(b.ffn.w_gate.weight, b.ffn.w_up.weight),
                w_down=weight(b.ffn.w_down.weight),
            )
            for b in model.blocks
        ]
        self.embedding = weight(model.tok_emb.weight)
        self.final_norm = weight(model.norm.weight)
        self.lm_head = self.embedding if model.output is None else weight(model.output.weight)
        cos, sin = rope_tables(mc.head_dim, mc.max_seq_len, mc.rope_theta)
        self.rope_cos, self.rope_sin = cos.to(device), sin.to(device)
        self.qkv_split = [mc.n_head * mc.head_dim, mc.n_kv_head * mc.head_dim, mc.n_kv_head * mc.head_dim]

        self.num_blocks = self._num_blocks(cfg, len(self.layers))
        # One block past those handed out: padding rows of a CUDA graph's batch write and read it.
        self.spare_block = self.num_blocks
        # Zeros, not empty: the spare block is read before it is written, and NaN garbage would spread.
        self.kv_cache = torch.zeros(
            2,
            len(self.layers),
            self.num_blocks + 1,
            cfg.block_size,
            mc.n_kv_head,
            mc.head_dim,
            dtype=dtype,
            device=device,
        )

        cuda = device.type == "cuda"
        fast = cuda and not cfg.enforce_eager
        compile_ = torch.compile(dynamic=True) if fast else (lambda fn: fn)
        self._norm, self._rope, self._silu_mul = compile_(rms_norm), compile_(rope), compile_(silu_mul)
        self._triton = self._matvec = None
        if cuda:
            from train.serve import triton_attention, triton_matvec

            # Compiled per shape on first use, which the graph capture makes at start-up; an eager
            # engine would pay those compiles in its first small batches, so it keeps cuBLAS.
            if fast and triton_matvec.supports(mc.head_dim, dtype):
                self._matvec = triton_matvec
            if triton_attention.supports(mc.head_dim, cfg.block_size, dtype):
                self._triton = triton_attention
                self._multiprocessors = torch.cuda.get_device_properties(device).multi_processor_count
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        if cuda:  # two in turn, as the engine reads one step's tokens while the next step's copy is queued
            self._host_tokens = torch.empty(2, cfg.max_num_seqs, dtype=torch.int64, pin_memory=True)
            self._token_turn = 0
        self._buckets = graph_buckets(cfg.max_num_seqs) if fast else []
        if cuda:
            self._warm_up_prefill(cfg.max_num_batched_tokens)
        if fast:
            self.capture_graphs()

    def _num_blocks(self, cfg: EngineConfig, n_layer: int) -> int:
        block_bytes = 2 * n_layer * cfg.block_size * self.n_kv_head * self.head_dim * self.dtype.itemsize
        if cfg.num_kv_blocks is not None:
            blocks = cfg.num_kv_blocks
        else:
            if self.device.type == "cuda":
                free, total = torch.cuda.mem_get_info(self.device)
                budget = total * cfg.gpu_memory_utilization - (total - free)
            else:
                budget = CPU_KV_CACHE_BYTES
            # More blocks than max_num_seqs full-length sequences can use would sit idle.
            blocks = min(int(budget // block_bytes), cfg.max_num_seqs * self.table_width)
        if blocks < self.table_width:
            raise ValueError(
                f"the KV cache has {blocks} blocks of {cfg.block_size} tokens, fewer than one sequence of the "
                f"model's {self.max_model_len} tokens needs ({self.table_width}); give it more memory "
                "(num_kv_blocks, gpu_memory_utilization)"
            )
        return blocks

    # -- inputs ---------------------------------------------------------------------------------------

    def _slots(self, seq: Sequence, start: int) -> np.ndarray:
        """Cache slots of `seq`'s tokens from `start` on."""
        positions = np.arange(start, len(seq))
        table = np.asarray(seq.block_table, dtype=np.int64)
        return table[positions // self.block_size] * self.block_size + positions % self.block_size

    def _decode_inputs(
        self, seqs: list[Sequence], rows: int, width: int, out: np.ndarray | None = None, ahead: int = 0
    ) -> np.ndarray:
        """Token ids, positions, slots, context lengths [rows each], then block tables [rows, width], in one
        int64 array (one host-to-device copy), written into `out` when given. Rows past the batch point at
        the spare block. `ahead` = 1: the step after the one in flight, whose token is not in `seqs` yet
        (its id comes from the device; the row's id here is a placeholder)."""
        size = rows * (4 + width)
        packed = np.empty(size, dtype=np.int64) if out is None else out[:size]
        ids, positions, slots, lens = packed[: 4 * rows].reshape(4, rows)
        tables = packed[4 * rows :].reshape(rows, width)
        ids[:] = 0
        positions[:] = 0
        slots[:] = self.spare_block * self.block_size
        lens[:] = 1
        tables[:] = self.spare_block
        for i, seq in enumerate(seqs):
            pos = len(seq) - 1 + ahead
            ids[i] = seq.token_ids[-1]
            positions[i] = pos
            slots[i] = seq.block_table[pos // self.block_size] * self.block_size + pos % self.block_size
            lens[i] = pos + 1
            tables[i, : len(seq.block_table)] = seq.block_table
        return packed

    @staticmethod
    def _unpack(packed: torch.Tensor, rows: int, width: int) -> tuple[torch.Tensor, ...]:
        ids, positions, slots, lens = packed[: 4 * rows].view(4, rows)
        return ids, positions, slots, lens, packed[4 * rows : rows * (4 + width)].view(rows, width)

    # -- forward --------------------------------------------------------------------------------------

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, attend
    ) -> torch.Tensor:
        """The residual stream after the last layer, one row per token; `attend(layer, q)` → [N, H·D] once
        the layer's k and v of these tokens are in the cache."""
        x = F.embedding(ids, self.embedding)
        for i, layer in enumerate(self.layers):
            q = self._qkv_rope_and_cache(i, x, positions, slots)
            x = self._linear_add(attend(i, q), layer.wo, x)
            x = self._linear_add(self._ffn_in(x, layer), layer.w_down, x)
        return x

    def _matvec_fits(self, x: torch.Tensor) -> bool:
        return self._matvec is not None and x.shape[0] <= self._matvec.MAX_ROWS

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._matvec_fits(x):
            return self._matvec.norm_matvec(x, self.final_norm, self.eps, self.lm_head)
        return F.linear(self._norm(x, self.final_norm, self.eps), self.lm_head)

    def _linear_add(self, y: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x + linear(y, weight): the residual add rides in the matmul's epilogue."""
        if self._matvec_fits(y):
            return self._matvec.matvec_add(y, weight, x)
        return torch.addmm(x, y, weight.t())

    def _ffn_in(self, x: torch.Tensor, layer: _Layer) -> torch.Tensor:
        """SiLU(gate) · up of the normalized residual stream."""
        if self._matvec_fits(x):
            return self._matvec.norm_matvec_silu(x, layer.ffn_norm, self.eps, layer.w_gate_up)
        return self._silu_mul(F.linear(self._norm(x, layer.ffn_norm, self.eps), layer.w_gate_up))

    def _qkv_rope_and_cache(
        self, layer: int, x: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        """Project the normalized x to q, k, v; rotate q and k; write k and v to the tokens' cache slots;
        q [N, H, D]."""
        weights = self.layers[layer]
        k_cache, v_cache = self.kv_cache[0, layer], self.kv_cache[1, layer]
        if self._matvec_fits(x):
            return self._matvec.norm_matvec_rope_cache(
                x, weights.attn_norm, self.eps, weights.wqkv, self.rope_cos, self.rope_sin,
                positions, slots, k_cache, v_cache, self.n_head,
            )  # fmt: skip
        qkv = F.linear(self._norm(x, weights.attn_norm, self.eps), weights.wqkv)
        if self._triton is not None:
            return self._triton.rope_and_cache(
                qkv, self.rope_cos, self.rope_sin, positions, slots, k_cache, v_cache, self.n_head
            )
        n = qkv.shape[0]
        q, k, v = qkv.split(self.qkv_split, dim=-1)
        cos, sin = self.rope_cos[positions].unsqueeze(1), self.rope_sin[positions].unsqueeze(1)
        q, k = self._rope(
            q.view(n, self.n_head, self.head_dim), k.view(n, self.n_kv_head, self.head_dim), cos, sin
        )
        k_cache.view(-1, self.n_kv_head, self.head_dim).index_copy_(0, slots, k)
        v_cache.view(-1, self.n_kv_head, self.head_dim).index_copy_(
            0, slots, v.view(n, self.n_kv_head, self.head_dim)
        )
        return q

    def _cached(self, layer: int, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V [N, KV, D] of the tokens in `slots`."""
        flat = self.kv_cache[:, layer].view(2, -1, self.n_kv_head, self.head_dim)
        return flat[0, slots], flat[1, slots]

    @torch.inference_mode()
    def prefill(self, seqs: list[Sequence]) -> torch.Tensor:
        """Compute and cache all tokens of each sequence; logits [B, padded vocab] of the last ones."""
        lens = [len(s) for s in seqs]
        ids = torch.tensor([t for s in seqs for t in s.token_ids], device=self.device)
        positions = torch.from_numpy(np.concatenate([np.arange(n) for n in lens])).to(self.device)
        slots = torch.from_numpy(np.concatenate([self._slots(s, 0) for s in seqs])).to(self.device)
        x = self._forward(
            ids, positions, slots, lambda i, q: attention.prefill_attention(q, *self._cached(i, slots), lens)
        )
        return self._logits(x[torch.tensor(np.cumsum(lens) - 1, device=self.device)])

    @torch.inference_mode()
    def decode(
        self, seqs: list[Sequence], after: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute and cache the newest token of each sequence; logits [B, padded vocab] after it, and
        each row's argmax over the vocabulary (the greedy token, computed inside the CUDA graph).

        `after`: the greedy tokens of a step still in flight for the same sequences (its return value),
        not yet appended to them; this step decodes those tokens, reading them on the device, so that it
        can be queued before the host has seen them (the engine's run-ahead). Each sequence's blocks must
        cover one token more than it holds."""
        batch, ahead = len(seqs), int(after is not None)
        if self.graphs:
            rows = self._buckets[bisect.bisect_left(self._buckets, batch)]
            graph, logits, greedy = self.graphs[rows]
            # Two pinned buffers in turn: the copy from the other one may still be queued behind a
            # running step. Through pinned memory the copy is a DMA ordered on the stream.
            host = self._host_inputs[self._turn]
            self._turn ^= 1
            size = self._decode_inputs(seqs, rows, self.table_width, host.numpy(), ahead).size
            self._static_inputs[ahead * rows : size].copy_(host[ahead * rows : size], non_blocking=True)
            if after is not None:
                self._static_inputs[:batch].copy_(after)
            graph.replay()
            return logits[:batch], greedy[:batch]
        width = max(len(s.block_table) for s in seqs)
        packed = torch.from_numpy(self._decode_inputs(seqs, batch, width, ahead=ahead)).to(self.device)
        if after is not None:
            packed[:batch] = after
        return self._decode_step(*self._unpack(packed, batch, width))

    def tokens_to_host(self, tokens: torch.Tensor) -> HostTokens:
        """Start copying a step's token ids to the host without waiting for the step to finish."""
        if tokens.device.type != "cuda":
            return HostTokens(tokens, None)
        host = self._host_tokens[self._token_turn][: tokens.shape[0]]
        self._token_turn ^= 1
        host.copy_(tokens, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return HostTokens(host, done)

    def _decode_step(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        slots: torch.Tensor,
        lens: torch.Tensor,
        tables: torch.Tensor,
    ) -> torch.Tensor:
        if self._triton is not None:
            tiles = -(-tables.shape[1] * self.block_size // self._triton.tile_tokens(self.block_size))
            splits = self._triton.num_splits(ids.shape[0], self.n_kv_head, tiles, self._multiprocessors)

            def attend(i, q):
                return self._triton.paged_decode_attention(
                    q, self.kv_cache[0, i], self.kv_cache[1, i], tables, lens, splits
                )
        else:

            def attend(i, q):
                return attention.paged_decode_attention(
                    q, self.kv_cache[0, i], self.kv_cache[1, i], tables, lens
                )

        logits = self._logits(self._forward(ids, positions, slots, attend))
        return logits, logits[:, : self.vocab_size].argmax(dim=-1)

    @torch.inference_mode()
    def _warm_up_prefill(self, tokens: int) -> None:
        """A prefill of the largest step, into the spare block: the one-time costs of large shapes (cuBLAS
        heuristics, allocator growth, kernel tuning) are paid at start-up rather than by the first requests."""
        lens = [self.max_model_len] * (tokens // self.max_model_len)
        positions = torch.arange(self.max_model_len, device=self.device).repeat(len(lens))
        slots = self.spare_block * self.block_size + positions % self.block_size
        ids = torch.zeros_like(positions)
        self._forward(
            ids, positions, slots, lambda i, q: attention.prefill_attention(q, *self._cached(i, slots), lens)
        )
        torch.cuda.synchronize(self.device)

    def capture_graphs(self) -> None:
        """One graph per bucket, largest first, all in one memory pool (a smaller one reuses its blocks);
        called again, it replaces them (bench/serve_throughput.py recaptures with PDL off for its A/B)."""
        self.graphs.clear()
        size = self._buckets[-1] * (4 + self.table_width)
        self._static_inputs = torch.empty(size, dtype=torch.int64, device=self.device)
        self._host_inputs = torch.empty(2, size, dtype=torch.int64, pin_memory=True)
        self._turn = 0
        pool = None
        with torch.inference_mode():
            for rows in reversed(self._buckets):
                padding = torch.from_numpy(self._decode_inputs([], rows, self.table_width))
                self._static_inputs[: padding.numel()].copy_(padding)
                inputs = self._unpack(self._static_inputs, rows, self.table_width)
                self._decode_step(*inputs)  # compile and load the kernels outside the capture
                torch.cuda.synchronize(self.device)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    logits, greedy = self._decode_step(*inputs)
                pool = graph.pool()
                self.graphs[rows] = (graph, logits, greedy)
