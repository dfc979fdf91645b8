"""Serving: a paged-KV-cache engine with continuous batching, an offline API and an OpenAI-compatible server.

| module | what it holds |
|---|---|
| `config.py` | `EngineConfig`: cache, batch and queue limits, device |
| `sampling_params.py` | `SamplingParams`: what a request asks of the sampler and the stopping rules |
| `sequence.py` | a request's tokens, KV blocks and output as the engine tracks them |
| `block_manager.py` | the KV cache's free list and block tables |
| `scheduler.py` | continuous batching: prefill first, decode, preemption, the bounded queue |
| `model_runner.py` | the model's forward over the paged cache; CUDA graphs for decode |
| `attention.py`, `triton_attention.py` | prefill and paged decode attention (torch; Triton on CUDA) |
| `triton_matvec.py`, `pdl.py` | fused decode matvecs for small batches; programmatic dependent launch |
| `sampler.py` | greedy, temperature, top-k, top-p, min-p, repetition penalty, seeds, logprobs |
| `detokenizer.py` | incremental text, stop strings held back until they are ruled out |
| `tokenizer.py` | the checkpoint's tokenizer, end-of-text token and chat template |
| `engine.py` | `LLMEngine`: add requests, step |
| `llm.py` | `LLM(checkpoint).generate(prompts, SamplingParams(...))` |
| `async_engine.py`, `protocol.py`, `server.py`, `metrics.py` | the HTTP server |
"""

from train.serve.config import EngineConfig
from train.serve.llm import LLM, Completion
from train.serve.sampling_params import SamplingParams

__all__ = ["LLM", "Completion", "EngineConfig", "SamplingParams"]
