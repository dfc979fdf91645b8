"""The engine's thread as the server drives it: what submission refuses, and why."""

from __future__ import annotations

import asyncio

import pytest
import torch

from train.model import Transformer, preset_config
from train.serve import SamplingParams
from train.serve.async_engine import AsyncEngine
from train.serve.config import EngineConfig
from train.serve.engine import LLMEngine, RequestError
from train.serve.scheduler import QueueFull


def test_more_completions_than_the_queue_holds_are_refused_for_good_not_told_to_retry():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny", vocab_size=300, max_seq_len=64)).eval()
    engine = AsyncEngine(LLMEngine(model, None, EngineConfig(max_waiting=4)))
    params = SamplingParams(max_tokens=2, detokenize=False)

    async def submit(count: int) -> None:
        engine.submit([([1, 2], params)] * count).close()

    # A 429 tells the client to retry, and five would never fit a queue of four.
    with pytest.raises(RequestError, match="max_waiting") as err:
        asyncio.run(submit(5))
    assert err.value.param == "n"
    asyncio.run(submit(4))  # the engine thread is not running: these four now fill the queue
    with pytest.raises(QueueFull):
        asyncio.run(submit(1))
