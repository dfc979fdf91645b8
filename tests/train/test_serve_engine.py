"""The serving engine on CPU: paged KV cache, continuous batching, sampling, stopping, the offline API."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch

from tests.train.serve_checkpoint import greedy_reference, write_checkpoint
from train import cli
from train.finetune.chat_template import TRANSCRIPT_CHAT_TEMPLATE
from train.model import Transformer, preset_config
from train.serve import LLM, SamplingParams
from train.serve.block_manager import BlockManager
from train.serve.detokenizer import OutputText
from train.serve.engine import LLMEngine, RequestError, load_model
from train.serve.sampler import Sampler
from train.serve.scheduler import QueueFull
from train.serve.sequence import Sequence
from train.serve.tokenizer import ServingTokenizer

VOCAB = 300


def tiny_model(max_seq_len: int = 64) -> Transformer:
    torch.manual_seed(0)
    return Transformer(preset_config("tiny", vocab_size=VOCAB, max_seq_len=max_seq_len, init_std=0.2)).eval()


def random_prompts(count: int, longest: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(VOCAB) for _ in range(rng.randint(1, longest))] for _ in range(count)]


def greedy(max_tokens: int, **extra) -> SamplingParams:
    extra = {"ignore_eos": True, **extra}
    return SamplingParams(max_tokens=max_tokens, temperature=0, detokenize=False, **extra)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer_file):
    return write_checkpoint(tmp_path_factory.mktemp("run"), tokenizer_file, max_seq_len=256)


def test_block_manager_grows_tables_block_by_block_and_takes_blocks_back():
    manager = BlockManager(num_blocks=5, block_size=4)
    seq = Sequence("a", list(range(9)), greedy(1), 1, None, None)
    assert manager.can_fit(seq)
    manager.fit(seq)
    assert len(seq.block_table) == 3 and manager.num_free_blocks == 2  # 9 tokens: ceil(9/4) blocks
    seq.token_ids += [1, 2, 3]
    manager.fit(seq)  # 12 tokens still fit in 3 blocks
    assert len(seq.block_table) == 3
    other = Sequence("b", list(range(13)), greedy(1), 1, None, None)
    assert not manager.can_fit(other)  # needs 4 blocks, 2 are free
    manager.free(seq)
    assert manager.num_free_blocks == 5 and seq.block_table == []


@pytest.mark.parametrize("num_kv_blocks", [None, 24])
def test_greedy_engine_equals_the_models_plain_forward_token_for_token(num_kv_blocks):
    """Mixed prompt lengths, one batch; with 24 blocks of 4 tokens the cache holds about 2 of the 12
    sequences at full length, so sequences are preempted and recomputed along the way."""
    model = tiny_model()
    prompts = random_prompts(12, 40)
    llm = LLM.from_model(
        model, block_size=4, num_kv_blocks=num_kv_blocks, max_num_seqs=8, max_num_batched_tokens=64
    )
    outs = llm.generate(prompts, greedy(20))
    for prompt, out in zip(prompts, outs, strict=True):
        assert out.token_ids == greedy_reference(model, prompt, 20)
        assert out.finish_reason == "length"
    engine = llm.engine
    assert (engine.scheduler.preemptions > 0) == (num_kv_blocks is not None)
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_requests_join_between_decode_steps_and_leave_when_done():
    engine = LLM.from_model(tiny_model(), max_num_batched_tokens=64).engine
    long = engine.add_request([1, 2, 3], greedy(10))
    assert engine.step()[0].seq is long  # prefill
    engine.step()  # decode: the batch is `long` alone, and its next decode step is queued behind it
    short = engine.add_request([4, 5], greedy(2))
    assert [o.seq for o in engine.step()] == [long]  # the step already queued
    assert [o.seq for o in engine.step()] == [short]  # then the new request, before the next decode
    outs = engine.step()
    assert [o.seq for o in outs] == [long, short]  # then it decodes with the running one
    assert [o.finished for o in outs] == [False, True] and short.finish_reason == "length"
    assert list(engine.scheduler.running) == [long]  # and leaves the batch as soon as it is done
    while engine.has_unfinished():
        engine.step()
    assert long.num_output_tokens == 10 and short.num_output_tokens == 2


def test_greedy_decode_runs_ahead_and_drops_the_extra_token_of_a_sequence_that_stops():
    """Greedy steps are queued one ahead (the runner reads the tokens in flight on the device); a
    sequence that meets its end-of-text token meanwhile ends exactly there, and every block comes back."""
    model = tiny_model()
    prompts = random_prompts(3, 12)
    references = [greedy_reference(model, prompt, 16) for prompt in prompts]
    llm = LLM.from_model(model, block_size=4, max_num_batched_tokens=64)
    engine = llm.engine
    eos = references[0][6]
    engine.eos_token_id = eos
    ahead = []
    decode = engine.runner.decode

    def recording_decode(seqs, after=None):
        ahead.append(after is not None)
        return decode(seqs, after)

    engine.runner.decode = recording_decode
    outs = llm.generate(prompts, greedy(16, ignore_eos=False))
    assert sum(ahead) >= len(ahead) // 2, "most decode steps were queued ahead"
    for reference, out in zip(references, outs, strict=True):
        expected = reference[: reference.index(eos) + 1] if eos in reference else reference
        assert out.token_ids == expected
        assert out.finish_reason == ("stop" if eos in reference else "length")
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_waiting_queue_is_bounded_and_bad_requests_are_refused():
    engine = LLM.from_model(tiny_model(max_seq_len=64), max_waiting=2, max_num_batched_tokens=64).engine
    engine.add_request([1], greedy(4))
    engine.add_request([2], greedy(4))
    with pytest.raises(QueueFull):
        engine.add_request([3], greedy(4))
    with pytest.raises(RequestError, match="maximum context length is 64 tokens"):
        engine.make_sequence([1] * 60, greedy(5))
    with pytest.raises(RequestError, match="empty"):
        engine.make_sequence([], greedy(5))
    seq = engine.make_sequence([1] * 60, greedy(4).model_copy(update={"max_tokens": None}))
    assert seq.max_tokens == 4  # up to the context


def test_seeded_sampling_repeats_whatever_else_is_in_the_batch():
    llm = LLM.from_model(tiny_model(), max_num_batched_tokens=64)
    prompt = [5, 6, 7]
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=42, ignore_eos=True, detokenize=False)
    alone = llm.generate([prompt], seeded)[0].token_ids
    crowd = llm.generate(
        random_prompts(5, 10) + [prompt],
        [SamplingParams(max_tokens=12, temperature=1.0, detokenize=False)] * 5 + [seeded],
    )
    assert crowd[-1].token_ids == alone
    other_seed = llm.generate([prompt], seeded.model_copy(update={"seed": 43}))[0].token_ids
    assert other_seed != alone


def _fake_seqs(params: list[SamplingParams]) -> list[Sequence]:
    return [
        Sequence(str(i), [0], p, 1, torch.Generator().manual_seed(i) if p.seed is not None else None, None)
        for i, p in enumerate(params)
    ]


def test_sampling_draws_from_the_tempered_distribution():
    torch.manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    sampler = Sampler(vocab_size=4, device=torch.device("cpu"), seed=0)
    rows = 4000
    for temperature in (1.0, 0.5):
        seqs = _fake_seqs([SamplingParams(temperature=temperature)] * rows)
        tokens, _ = sampler(logits.expand(rows, 4).clone(), seqs)
        freq = torch.bincount(torch.tensor(tokens), minlength=4).float() / rows
        assert torch.allclose(freq, (logits / temperature).softmax(-1), atol=0.03)


def test_the_runners_greedy_tokens_serve_only_batches_that_want_nothing_else():
    sampler = Sampler(vocab_size=4, device=torch.device("cpu"), seed=0)
    logits = torch.tensor([[0.0, 5.0, 1.0, 0.0]])
    seen = Sequence("0", [1, 1, 1], SamplingParams(temperature=0, repetition_penalty=100.0), 1, None, None)
    marker = torch.tensor([3])  # not the argmax: shows whose answer the sampler returns
    assert sampler(logits, _fake_seqs([SamplingParams(temperature=0)]), marker)[0] == [3]
    # A penalty, logprobs or sampling need the logits: the runner's argmax is not the answer then.
    assert sampler(logits.clone(), [seen], marker)[0] == [2]
    tokens, logprobs = sampler(logits, _fake_seqs([SamplingParams(temperature=0, logprobs=1)]), marker)
    assert tokens == [1] and logprobs[0] is not None


def test_top_k_top_p_and_min_p_keep_only_the_likely_tokens():
    logits = torch.tensor([[3.0, 2.9, 0.0, -1.0, -2.0]]).expand(500, 5).clone()
    sampler = Sampler(vocab_size=5, device=torch.device("cpu"), seed=0)
    for params, allowed in [
        (SamplingParams(top_k=1), {0}),
        (SamplingParams(top_k=2), {0, 1}),
        (SamplingParams(top_p=0.6), {0, 1}),  # p = 0.505, 0.457, 0.025, ...
        (SamplingParams(top_p=0.5), {0}),
        (SamplingParams(min_p=0.5), {0, 1}),
        (SamplingParams(min_p=1.0), {0}),
    ]:
        tokens, _ = sampler(logits.clone(), _fake_seqs([params] * 500))
        assert set(tokens) == allowed, params


def test_repetition_penalty_steers_greedy_decoding_away_from_seen_tokens():
    llm = LLM.from_model(tiny_model(), max_num_batched_tokens=64)
    prompt = [7, 8, 9, 10]
    plain = llm.generate([prompt], greedy(30))[0].token_ids
    assert len(set(plain)) < 30 or set(plain) & set(prompt)  # the random model repeats itself
    penalized = llm.generate([prompt], greedy(30, repetition_penalty=1e4))[0].token_ids
    assert len(set(penalized)) == 30 and not set(penalized) & set(prompt)


def test_logprobs_are_the_models_and_top_alternatives_are_sorted():
    model = tiny_model()
    llm = LLM.from_model(model, max_num_batched_tokens=64)
    prompt = [3, 1, 4, 1, 5]
    out = llm.generate([prompt], greedy(6, logprobs=3))[0]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + out.token_ids]))[0, len(prompt) - 1 : -1, :VOCAB]
    expected = logits.log_softmax(-1)
    for i, lp in enumerate(out.logprobs):
        assert lp.token_id == out.token_ids[i]
        assert lp.logprob == pytest.approx(expected[i, lp.token_id].item(), abs=1e-5)
        assert [t for t, _ in lp.top] == expected[i].topk(3).indices.tolist()
        assert lp.top[0][0] == lp.token_id  # greedy picks the most likely


def test_stop_strings_are_cut_and_their_prefixes_held_back(tokenizer_file):
    serving = ServingTokenizer.from_checkpoint(tokenizer_file.parent)
    text = "the cat sees the red house. a dog likes the green hill."
    ids = serving.encode(text)
    output = OutputText(serving.tokenizer, stop=["red hou", "xyz"])
    final = text[: text.index("red hou")]
    released = ""
    for token in ids:
        output.add(token)
        released += output.release(finished=False)
        assert final.startswith(released)  # nothing past the cut is ever released, not even "red"
        if output.stopped:
            break
    assert output.stopped and released == final


def test_streamed_text_equals_one_decode_of_all_tokens_even_mid_character(tokenizer_file):
    serving = ServingTokenizer.from_checkpoint(tokenizer_file.parent)
    rng = random.Random(0)
    ids = serving.encode("héllo wörld — ünïcode ✓ ") + [rng.randrange(serving.vocab_size) for _ in range(200)]
    output = OutputText(serving.tokenizer, stop=[])
    streamed = ""
    for token in ids:
        output.add(token)
        streamed += output.release(finished=False)
    output.flush()
    streamed += output.release(finished=True)
    assert streamed == serving.decode(ids)


def test_text_generation_stops_at_stop_strings_and_end_of_text(checkpoint):
    llm = LLM(checkpoint)
    engine = llm.engine
    prompt = "The cat sees"
    ids = engine.tokenizer.encode(prompt)
    reference = greedy_reference(load_model(checkpoint), ids, 24)
    full = engine.tokenizer.decode(reference)
    stop = next(full[i : i + 3] for i in range(4, len(full)) if "\ufffd" not in full[i : i + 3])
    params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, stop=[stop])
    out = llm.generate([prompt], params)[0]
    assert out.finish_reason == "stop" and out.text == full[: full.index(stop)]
    # The end-of-text token: make the model's fourth greedy token the EOS.
    engine.eos_token_id = reference[3]
    out = llm.generate([prompt], SamplingParams(max_tokens=24, temperature=0))[0]
    assert out.finish_reason == "stop" and out.token_ids == reference[: reference.index(reference[3]) + 1]


def test_checkpoint_chat_template_from_tokenizer_config(checkpoint, tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    default = ServingTokenizer.from_checkpoint(checkpoint)
    assert default.chat_template == TRANSCRIPT_CHAT_TEMPLATE
    assert default.apply_chat_template(messages) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"
    custom = tmp_path / "ckpt"
    shutil.copytree(checkpoint, custom)
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
    (custom / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": template, "eos_token": "<|pad|>"})
    )
    serving = ServingTokenizer.from_checkpoint(custom)
    assert serving.apply_chat_template(messages) == "<|system|>Be brief.<|user|>Hi<|assistant|>"
    assert serving.eos_token_id == serving.tokenizer.token_to_id("<|pad|>")


def test_generate_cli_prints_what_the_offline_api_returns(checkpoint, capsys):
    run_dir = checkpoint.parents[1]  # a run directory resolves to its newest checkpoint
    args = ["generate", "--checkpoint", str(run_dir), "--prompt", "The cat", "--prompt", "A dog likes"]
    assert cli.main([*args, "--max-tokens", "8", "--temperature", "0", "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = LLM(checkpoint).generate(
        ["The cat", "A dog likes"], SamplingParams(max_tokens=8, temperature=0)
    )
    assert [p["text"] for p in printed] == [e.text for e in expected]
    assert cli.main([*args, "--max-tokens", "0"]) == 2
    assert "--max-tokens" in capsys.readouterr().err


def test_engine_from_a_checkpoint_serves_its_model(checkpoint):
    engine = LLMEngine.from_checkpoint(checkpoint)
    assert (
        engine.max_model_len == 256
        and engine.tokenizer.eos_token_id == engine.tokenizer.tokenizer.token_to_id("<|endoftext|>")
    )
    # The model write_checkpoint saved, rebuilt from its seed rather than loaded: the engine's greedy
    # tokens are this model's.
    torch.manual_seed(0)
    vocab = engine.tokenizer.tokenizer.get_vocab_size()
    saved = Transformer(preset_config("tiny", vocab_size=vocab, max_seq_len=256, init_std=0.2)).eval()
    prompt = engine.tokenizer.encode("The cat sees")
    out = LLM(checkpoint).generate([prompt], greedy(12))[0]
    assert out.token_ids == greedy_reference(saved, prompt, 12)
