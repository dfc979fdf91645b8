"""Next tokens from logits: repetition penalty, temperature, top-k, top-p, min-p, per-request seeds.

The whole batch goes through each filter at once; a filter no request uses costs nothing. Sampling draws
Exp(1) noise e and takes argmax(p / e), which picks token i with probability p_i: a request with a seed
draws its noise from its own generator, so its output does not depend on what else is in the batch.
Log-probabilities are those of the model, before penalty, temperature and truncation.
"""

from __future__ import annotations

import numpy as np
import torch

from train.serve.sequence import Sequence, TokenLogprob


class Sampler:
    """Picks each sequence's next token; `generator` serves requests without a seed."""

    def __init__(self, vocab_size: int, device: torch.device, seed: int) -> None:
        self.vocab_size = vocab_size
        self.device = device
        self.generator = torch.Generator(device).manual_seed(seed)

    @torch.inference_mode()
    def __call__(
        self, logits: torch.Tensor, seqs: list[Sequence], greedy: torch.Tensor | None = None
    ) -> tuple[list[int], list[TokenLogprob | None]]:
        """`greedy`, when the caller has it, is each row's argmax over the vocabulary: a batch that wants
        nothing else (no sampling, penalty or logprobs) costs no kernel here."""
        if greedy is not None and self.greedy_only(seqs):
            return greedy.tolist(), [None] * len(seqs)
        params = [s.params for s in seqs]
        # The embedding is padded past the vocabulary: those rows are not tokens.
        logits = logits[:, : self.vocab_size].float()
        logprobs = torch.log_softmax(logits, dim=-1) if any(p.logprobs is not None for p in params) else None
        penalized = [i for i, p in enumerate(params) if p.repetition_penalty != 1]
        if penalized:
            logits[penalized] = self._penalize(logits[penalized], [seqs[i] for i in penalized])
        tokens = logits.argmax(dim=-1)
        sampled = [i for i, p in enumerate(params) if not p.greedy]
        if sampled:
            tokens[sampled] = self._sample(logits[sampled], [seqs[i] for i in sampled])
        token_ids = tokens.tolist()
        if logprobs is None:
            return token_ids, [None] * len(seqs)
        return token_ids, self._logprobs(logprobs, tokens, params)

    @staticmethod
    def greedy_only(seqs: list[Sequence]) -> bool:
        """Whether every sequence's next token is its argmax, with no penalty and no logprobs."""
        return all(
            s.params.greedy and s.params.repetition_penalty == 1 and s.params.logprobs is None for s in seqs
        )

    def _penalize(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        """CTRL's penalty on every token of the prompt and output: positive logits / p, negative × p."""
        longest = max(len(s) for s in seqs)
        seen = np.full((len(seqs), longest), self.vocab_size, dtype=np.int64)  # the extra column: padding
        for row, seq in enumerate(seqs):
            seen[row, : len(seq)] = seq.token_ids
        seen_t = torch.from_numpy(seen).to(self.device)
        penalty = torch.tensor([s.params.repetition_penalty for s in seqs], device=self.device)[:, None]
        padded = torch.nn.functional.pad(logits, (0, 1))
        values = padded.gather(1, seen_t)
        padded.scatter_(1, seen_t, torch.where(values > 0, values / penalty, values * penalty))
        return padded[:, : self.vocab_size]

    def _sample(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        params = [s.params for s in seqs]
        logits = logits / torch.tensor([p.temperature for p in params], device=self.device)[:, None]
        if any(p.top_k or p.top_p < 1 for p in params):
            logits = self._top_k_top_p(logits, params)
        min_p = [p.min_p for p in params]
        if any(min_p):
            probs = logits.softmax(dim=-1)
            floor = torch.tensor(min_p, device=self.device)[:, None] * probs.max(dim=-1, keepdim=True).values
            logits = logits.masked_fill(probs < floor, float("-inf"))
        probs = logits.softmax(dim=-1)
        noise = torch.empty_like(probs).exponential_(generator=self.generator)
        for row, seq in enumerate(seqs):
            if seq.generator is not None:
                noise[row].exponential_(generator=seq.generator)
        return (probs / noise).argmax(dim=-1)

    def _top_k_top_p(self, logits: torch.Tensor, params: list) -> torch.Tensor:
        """Keep the k most likely tokens, then the smallest set of those whose mass reaches top_p."""
        ordered, order = logits.sort(dim=-1, descending=True)
        rank = torch.arange(logits.shape[-1], device=self.device)
        top_k = torch.tensor([p.top_k or logits.shape[-1] for p in params], device=self.device)[:, None]
        ordered = ordered.masked_fill(rank >= top_k, float("-inf"))
        probs = ordered.softmax(dim=-1)
        top_p = torch.tensor([p.top_p for p in params], device=self.device)[:, None]
        # The mass before a token must be under top_p for it to stay: the most likely token always stays.
        ordered = ordered.masked_fill(probs.cumsum(dim=-1) - probs > top_p, float("-inf"))
        return torch.full_like(logits, float("-inf")).scatter(1, order, ordered)

    @staticmethod
    def _logprobs(logprobs: torch.Tensor, tokens: torch.Tensor, params: list) -> list[TokenLogprob | None]:
        chosen = logprobs.gather(1, tokens[:, None])[:, 0].tolist()
        most = max(p.logprobs or 0 for p in params)
        top = logprobs.topk(most, dim=-1) if most else None
        top_ids, top_values = (top.indices.tolist(), top.values.tolist()) if top is not None else ([], [])
        out: list[TokenLogprob | None] = []
        for row, (p, token) in enumerate(zip(params, tokens.tolist(), strict=True)):
            if p.logprobs is None:
                out.append(None)
                continue
            n = p.logprobs
            alternatives = list(zip(top_ids[row][:n], top_values[row][:n], strict=True)) if n else []
            out.append(TokenLogprob(token, chosen[row], alternatives))
        return out
