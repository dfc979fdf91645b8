"""The engine: requests in, one scheduled step at a time, tokens and text out.

`LLMEngine` is synchronous and single-threaded: `add_request`, then `step()` until `has_unfinished()` is
false. Each step runs the scheduler's batch through the model runner and the sampler, then appends each
sequence's token and applies the stopping rules (end-of-text, stop strings, max_tokens); greedy decode
steps run one ahead of the host (`step`). The offline API
(llm.py) drives it in a loop; the HTTP server (async_engine.py) drives it from a background thread.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import torch

from train.checkpoint import load_weights, read_state, state_model_config
from train.distributed import pick_device
from train.model import Transformer
from train.serve.block_manager import BlockManager
from train.serve.config import EngineConfig
from train.serve.detokenizer import OutputText
from train.serve.model_runner import ModelRunner
from train.serve.sampler import Sampler
from train.serve.sampling_params import SamplingParams
from train.serve.scheduler import QueueFull, Scheduler
from train.serve.sequence import Sequence, Status, TokenLogprob
from train.serve.tokenizer import ServingTokenizer

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class RequestError(ValueError):
    """A request the engine cannot serve as asked (too long, empty); `param` names the culprit."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class StepOutput:
    """What one step added to a request: a token, the text now safe to show, whether it finished."""

    seq: Sequence
    token_id: int
    text: str
    logprob: TokenLogprob | None
    finished: bool


@dataclass(frozen=True)
class _GreedyDecode:
    """A greedy decode step queued on the device: its sequences and their tokens (still on the device)."""

    seqs: list[Sequence]
    tokens: torch.Tensor


def load_model(checkpoint: Path) -> Transformer:
    """The checkpoint's model (its shape from state.json, its weights from model.safetensors), on CPU."""
    model = Transformer(state_model_config(read_state(checkpoint, "model"), checkpoint))
    load_weights(checkpoint, model)
    return model


class LLMEngine:
    """A model, its KV cache, a scheduler and a sampler; `tokenizer` may be None for token-id prompts."""

    def __init__(
        self, model: Transformer, tokenizer: ServingTokenizer | None, config: EngineConfig | None = None
    ) -> None:
        self.config = config = config or EngineConfig()
        self.tokenizer = tokenizer
        self.max_model_len = model.cfg.max_seq_len
        if config.max_num_batched_tokens < self.max_model_len:
            raise ValueError(
                f"max_num_batched_tokens {config.max_num_batched_tokens} is under the model's context of "
                f"{self.max_model_len} tokens: a full-length prompt could never be prefilled"
            )
        self.device = pick_device(config.device)
        cuda = self.device.type == "cuda"
        dtype = _DTYPES[config.dtype] if config.dtype != "auto" else torch.bfloat16 if cuda else torch.float32
        self.runner = ModelRunner(model, config, self.device, dtype)
        self.block_manager = BlockManager(self.runner.num_blocks, config.block_size)
        self.scheduler = Scheduler(config, self.block_manager)
        self.sampler = Sampler(model.cfg.vocab_size, self.device, config.seed)
        self.eos_token_id = tokenizer.eos_token_id if tokenizer else None
        self._ids = itertools.count()
        self._ahead: _GreedyDecode | None = None

    @classmethod
    def from_checkpoint(
        cls, path: Path, config: EngineConfig | None = None, eos_token: str | None = None
    ) -> LLMEngine:
        """An engine for a checkpoint directory (or a run directory's newest checkpoint)."""
        # Imported here: train.evaluate brings the data pipeline (pandas, pyarrow) that token-id use skips.
        from train.evaluate import resolve_checkpoint

        checkpoint = resolve_checkpoint(path)
        # The tokenizer first: a bad eos token or chat template is reported before the weights load.
        tokenizer = ServingTokenizer.from_checkpoint(checkpoint, eos_token)
        return cls(load_model(checkpoint), tokenizer, config)

    def add_request(
        self, prompt_token_ids: list[int], params: SamplingParams, request_id: str | None = None
    ) -> Sequence:
        """Queue a request; RequestError if it cannot be served, QueueFull if the waiting queue is full."""
        seq = self.make_sequence(prompt_token_ids, params, request_id)
        if self.scheduler.room() <= 0:
            raise QueueFull(f"{len(self.scheduler.waiting)} requests are waiting already (max_waiting)")
        self.scheduler.add(seq)
        return seq

    def make_sequence(
        self, prompt_token_ids: list[int], params: SamplingParams, request_id: str | None = None
    ) -> Sequence:
        """A request checked and ready to queue (RequestError if it cannot be served); safe from any thread."""
        n = len(prompt_token_ids)
        if n == 0:
            raise RequestError("the prompt is empty: it needs at least one token", "prompt")
        max_tokens = params.max_tokens or self.max_model_len - n
        if n + max_tokens > self.max_model_len:
            raise RequestError(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{n + max_tokens} tokens ({n} in the prompt, {max_tokens} for the completion). "
                "Please reduce the length of the prompt or of max_tokens.",
                "max_tokens" if n < self.max_model_len else "prompt",
            )
        if params.detokenize and self.tokenizer is None:
            raise RequestError("this engine has no tokenizer: ask for token ids only (detokenize=False)")
        generator = None
        if params.seed is not None:
            generator = torch.Generator(self.device).manual_seed(params.seed)
        return Sequence(
            request_id=request_id if request_id is not None else str(next(self._ids)),
            token_ids=list(prompt_token_ids),
            params=params,
            max_tokens=max_tokens,
            generator=generator,
            text=OutputText(self.tokenizer.tokenizer, params.stop) if params.detokenize else None,
        )

    def abort(self, request_id: str) -> bool:
        """Stop a request and free its KV blocks; False if it was not waiting or running."""
        return self.scheduler.abort(request_id) is not None

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[StepOutput]:
        """Run one prefill or decode step; one output per sequence in it (that is still running).

        A decode step whose tokens are all greedy runs one step ahead: before the host waits for its
        tokens, the next step of the same sequences is queued, reading those tokens on the device, so the
        GPU goes on while the host appends tokens, checks stopping rules and streams text. That next step
        is what the following call returns. It is queued only when it is sure to be the same batch: no
        request waiting, no sequence at its last token, a KV slot free for each; a sequence that stops
        on an end-of-text token or a stop string meanwhile has its extra token dropped."""
        decode, self._ahead = self._ahead, None
        if decode is None:
            batch = self.scheduler.schedule()
            if batch is None:
                return []
            if batch.is_prefill:
                logits, greedy = self.runner.prefill(batch.seqs), None
            else:
                logits, greedy = self.runner.decode(batch.seqs)
            if batch.is_prefill or not self.sampler.greedy_only(batch.seqs):
                token_ids, logprobs = self.sampler(logits, batch.seqs, greedy)
                return [self._append(*out) for out in zip(batch.seqs, token_ids, logprobs, strict=True)]
            decode = _GreedyDecode(batch.seqs, greedy)
        # The copy goes first: the next step's graph overwrites its output buffer.
        tokens = self.runner.tokens_to_host(decode.tokens)
        if self._may_run_ahead(decode.seqs):
            self._ahead = _GreedyDecode(decode.seqs, self.runner.decode(decode.seqs, after=decode.tokens)[1])
        outputs = [
            self._append(seq, token, None)
            for seq, token in zip(decode.seqs, tokens.tolist(), strict=True)
            if seq.status is Status.RUNNING
        ]
        if self._ahead is not None and all(seq.status is not Status.RUNNING for seq in self._ahead.seqs):
            self._ahead = None  # every sequence stopped: nothing will read it
        return outputs

    def _may_run_ahead(self, seqs: list[Sequence]) -> bool:
        """Whether the step after `seqs`' step in flight is certain to be theirs; if so, their KV slots for it."""
        scheduler, blocks = self.scheduler, self.block_manager
        if scheduler.waiting or list(scheduler.running) != seqs:
            return False
        if any(seq.num_output_tokens + 1 >= seq.max_tokens for seq in seqs):
            return False  # the token in flight is its last
        if sum(blocks.missing(seq, 1) for seq in seqs) > blocks.num_free_blocks:
            return False
        for seq in seqs:
            blocks.fit(seq, 1)
        return True

    def _append(self, seq: Sequence, token_id: int, logprob: TokenLogprob | None) -> StepOutput:
        seq.token_ids.append(token_id)
        if logprob is not None:
            seq.logprobs.append(logprob)
        reason = None
        if seq.text is not None:
            seq.text.add(token_id)
            if seq.text.stopped:
                reason = "stop"
        if reason is None:
            if token_id == self.eos_token_id and not seq.params.ignore_eos:
                reason = "stop"
            elif seq.num_output_tokens >= seq.max_tokens:
                reason = "length"
            if reason is not None and seq.text is not None:
                seq.text.flush()
                if seq.text.stopped:
                    reason = "stop"
        if reason is not None:
            self.scheduler.finish(seq, reason)
        text = seq.text.release(finished=reason is not None) if seq.text is not None else ""
        return StepOutput(seq, token_id, text, logprob, finished=reason is not None)
