"""The offline API for batch jobs: `LLM(checkpoint).generate(prompts, SamplingParams(...))`."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from train.model import Transformer
from train.serve.config import EngineConfig
from train.serve.engine import LLMEngine
from train.serve.sampling_params import SamplingParams
from train.serve.sequence import Sequence, TokenLogprob
from train.serve.tokenizer import ServingTokenizer


@dataclass(frozen=True)
class Completion:
    """One prompt's result."""

    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (end-of-text or a stop string) or "length" (max_tokens)
    logprobs: list[TokenLogprob]

    @classmethod
    def of(cls, seq: Sequence) -> Completion:
        return cls(
            prompt_token_ids=seq.token_ids[: seq.num_prompt_tokens],
            token_ids=seq.output_token_ids,
            text=seq.text.text if seq.text is not None else "",
            finish_reason=seq.finish_reason,
            logprobs=seq.logprobs,
        )


class LLM:
    """Generate for many prompts at once, with the serving engine's continuous batching."""

    def __init__(self, checkpoint: str | Path, eos_token: str | None = None, **config) -> None:
        """`config`: EngineConfig fields (max_num_seqs, device, ...)."""
        self.engine = LLMEngine.from_checkpoint(Path(checkpoint), EngineConfig(**config), eos_token)

    @classmethod
    def from_model(cls, model: Transformer, tokenizer: ServingTokenizer | None = None, **config) -> LLM:
        """An LLM over a model in memory; without a tokenizer, prompts are token ids and outputs ids only."""
        llm = cls.__new__(cls)
        llm.engine = LLMEngine(model, tokenizer, EngineConfig(**config))
        return llm

    def generate(
        self,
        prompts: list[str] | list[list[int]],
        params: SamplingParams | list[SamplingParams] | None = None,
    ) -> list[Completion]:
        """Completions in the order of `prompts` (strings, or token-id lists); one SamplingParams for all
        or one per prompt."""
        params = params or SamplingParams()
        per_prompt = params if isinstance(params, list) else [params] * len(prompts)
        if len(per_prompt) != len(prompts):
            raise ValueError(f"{len(per_prompt)} SamplingParams for {len(prompts)} prompts")
        pending = deque(zip(map(self._token_ids, prompts), per_prompt, strict=True))
        seqs: list[Sequence] = []
        engine = self.engine
        while pending or engine.has_unfinished():
            # Queue what the bounded waiting queue takes; the rest joins as sequences finish.
            while pending and engine.scheduler.room() > 0:
                seqs.append(engine.add_request(*pending.popleft()))
            engine.step()
        return [Completion.of(seq) for seq in seqs]

    def _token_ids(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            if self.engine.tokenizer is None:
                raise ValueError("this LLM has no tokenizer: give prompts as token-id lists")
            return self.engine.tokenizer.encode(prompt)
        return list(prompt)
