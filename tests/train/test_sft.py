"""SFT: the loss sees only the assistant's tokens, packed examples do not see each other, and the tiny
model learns a small instruction set well enough to answer every prompt with its response, greedily."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.train.finetune_fixtures import (  # noqa: F401 (one_thread: an autouse fixture)
    INSTRUCTIONS,
    one_thread,
    pretrain_base,
    read_conversations_of,
    write_jsonl,
)
from train.checkpoint import latest_checkpoint, load_weights, read_state
from train.cli import main
from train.data import DataSource
from train.evaluate import evaluate_checkpoint
from train.finetune.chat_template import DEFAULT_CHAT_TEMPLATE, ChatFormat
from train.finetune.data import IGNORE_INDEX, make_example, read_conversations
from train.finetune.packing import collate, pack, packed_logits
from train.finetune.sft import SFTObjective
from train.metrics import read_metrics
from train.model import ModelConfig, Transformer

CONVERSATION = [
    {"role": "user", "content": "What does the cat see?"},
    {"role": "assistant", "content": "The red house."},
    {"role": "user", "content": "And the dog?"},
    {"role": "assistant", "content": "A long river."},
]


@pytest.fixture(scope="module")
def base(tmp_path_factory, shards):
    return pretrain_base(shards, tmp_path_factory.mktemp("base") / "run")


def load_model(checkpoint) -> Transformer:
    model = Transformer(ModelConfig(**read_state(checkpoint)["model"]))
    load_weights(checkpoint, model)
    return model.eval()


@torch.no_grad()
def greedy_reply(model: Transformer, chat: ChatFormat, messages: list[dict], max_new_tokens: int = 40) -> str:
    """The assistant's next turn, one argmax token at a time, until the end-of-turn token."""
    ids = chat.encode_prompt(messages)
    reply = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids + reply]))[0, -1, : model.cfg.vocab_size]
        token = int(logits.argmax())
        if token == chat.eos_id:
            break
        reply.append(token)
    return chat.tokenizer.decode(reply)


def test_only_the_assistant_turns_are_targets(base):
    chat = ChatFormat.from_checkpoint(base)
    ids, is_response = chat.encode(CONVERSATION)
    assert ids == chat.tokenizer.encode(chat.render(CONVERSATION), add_special_tokens=False).ids
    example, truncated = make_example(ids, is_response, seq_len=128)
    assert not truncated and len(example.inputs) == len(ids) - 1
    learned = [t for t in example.targets if t != IGNORE_INDEX]
    eos = chat.special_tokens["eos_token"]
    # Each assistant turn is learned up to and including its end-of-turn token; no prompt token is.
    assert (
        chat.tokenizer.decode(learned, skip_special_tokens=False)
        == f"The red house.{eos}\nA long river.{eos}\n"
    )
    # The prompt for the assistant's turn is exactly what precedes its targets.
    first = next(i for i, t in enumerate(example.targets) if t != IGNORE_INDEX)
    assert ids[: first + 1] == chat.encode_prompt(CONVERSATION[:1])


def test_the_loss_does_not_change_when_prompt_tokens_do(base):
    """Flip every prompt token the model reads before the assistant's turn (but the last, which predicts the
    first response token). With attention switched off (wo = 0) each position sees only its own token, so a
    loss that counts prompt positions changes, and the SFT loss must not."""
    chat = ChatFormat.from_checkpoint(base)
    ids, is_response = chat.encode(CONVERSATION[:2])
    first_response = is_response.index(True)
    generator = torch.Generator().manual_seed(0)
    flipped = [
        int(torch.randint(3, 300, (1,), generator=generator)) if i < first_response - 1 else t
        for i, t in enumerate(ids)
    ]
    assert flipped != ids
    model = load_model(base)
    for block in model.blocks:
        torch.nn.init.zeros_(block.attn.wo.weight)
    objective = SFTObjective(chat.pad_id)
    losses, every_token = [], []
    for tokens in (ids, flipped):
        example, _ = make_example(tokens, is_response, seq_len=128)
        with torch.no_grad():
            losses.append(objective.loss_sum(model, [[example]], torch.device("cpu"))[0])
            logits = model(torch.tensor([example.inputs]))[0]
        every_token.append(F.cross_entropy(logits, torch.tensor(tokens[1:]), reduction="sum"))
    assert torch.equal(losses[0], losses[1])
    assert not torch.allclose(every_token[0], every_token[1])


def test_packed_examples_are_computed_as_if_alone(base):
    chat = ChatFormat.from_checkpoint(base)
    examples = [make_example(*chat.encode(c), seq_len=128)[0] for c in read_conversations_of(INSTRUCTIONS)]
    rows = pack(examples, seq_len=128)
    assert len(rows) < len(examples) and all(sum(len(e.inputs) for e in row) <= 128 for row in rows)
    row = max(rows, key=len)  # several examples, and padding in the batch when rows differ in length
    model = load_model(base)
    with torch.no_grad():
        packed = packed_logits(model, collate(rows, chat.pad_id))[rows.index(row)]
        alone = [model(torch.tensor([e.inputs]))[0] for e in row]
        start = 0
        for example, logits in zip(row, alone, strict=True):
            end = start + len(example.inputs)
            assert (packed[start:end] - logits).abs().max() < 1e-5
            start = end
        # Without the block mask and the restarting positions, the second example would see the first.
        concatenated = model(torch.tensor([[t for e in row for t in e.inputs]]))[0]
        assert (concatenated[len(row[0].inputs) : start] - torch.cat(alone[1:])).abs().max() > 1e-3


def test_sft_learns_the_responses_and_writes_a_pretrain_style_checkpoint(base, shards, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", INSTRUCTIONS)
    assert read_conversations(data) == read_conversations_of(INSTRUCTIONS)
    out = tmp_path / "sft"
    # The held-out file repeats the training set: its loss must fall from the base's to almost nothing.
    args = ["finetune", "sft", "--base", str(base.parent.parent), "--data", str(data), "--out", str(out)]
    args += ["--valid-data", str(data), "--batch-size", "1", "--epochs", "60"]
    args += ["--lr", "3e-3", "--warmup-steps", "5", "--log-every", "10", "--no-progress"]
    assert main(args) == 0
    checkpoint = latest_checkpoint(out / "checkpoints")
    assert {p.name for p in checkpoint.iterdir()} == {p.name for p in base.iterdir()} | {
        "tokenizer_config.json"
    }
    tokenizer_config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == DEFAULT_CHAT_TEMPLATE

    valid = read_metrics(out / "metrics.jsonl", "valid")
    assert [r["step"] for r in valid] == [0, read_state(checkpoint)["step"]]
    assert valid[-1]["loss"] < 0.1 < 2.0 < valid[0]["loss"]
    assert valid[-1]["perplexity"] == pytest.approx(math.exp(valid[-1]["loss"]))

    model, chat = load_model(checkpoint), ChatFormat.from_checkpoint(checkpoint)
    for conversation in read_conversations_of(INSTRUCTIONS):
        assert greedy_reply(model, chat, conversation[:-1]) == conversation[-1]["content"]

    # Loads wherever a pretrain checkpoint does: `train eval` on the base run's held-out documents.
    (result,) = evaluate_checkpoint(checkpoint, [DataSource(shards)], split="valid", micro_batch_size=2)
    assert math.isfinite(result.loss) and result.tokens > 0


def test_a_conversation_without_an_assistant_turn_is_an_error(base, tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "Hello?"}]}])
    chat = ChatFormat.from_checkpoint(base)
    with pytest.raises(ValueError, match="no assistant message"):
        chat.encode(read_conversations(data)[0])
    (tmp_path / "broken.jsonl").write_text('{"prompt": "no response"}\n')
    with pytest.raises(ValueError, match="broken.jsonl:1: expected"):
        read_conversations(tmp_path / "broken.jsonl")


def test_a_chat_template_from_a_file_is_stored_with_the_checkpoint(base, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text(
        "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
    )
    data = write_jsonl(tmp_path / "train.jsonl", INSTRUCTIONS[:2])
    out = tmp_path / "run"
    args = ["finetune", "sft", "--base", str(base), "--data", str(data), "--out", str(out), "--epochs", "1"]
    args += ["--chat-template", str(template), "--valid-fraction", "0", "--no-progress", "--no-pack"]
    assert main(args) == 0
    checkpoint = out / "checkpoints" / "step_0000001"
    chat = ChatFormat.from_checkpoint(checkpoint)
    assert chat.render(CONVERSATION[:1], add_generation_prompt=True) == (
        "USER: What does the cat see?<|endoftext|>ASSISTANT: "
    )
    assert chat.config == json.loads((checkpoint / "tokenizer_config.json").read_text())


def test_bad_data_and_template_files_are_one_line_errors_naming_the_flag(base, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", INSTRUCTIONS[:4])
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe{}\n")
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "syntax.jinja").write_text("{{ messages")
    (tmp_path / "refuses.jinja").write_text("{{ raise_exception('roles must alternate') }}")
    args = ["finetune", "sft", "--base", str(base), "--out", str(tmp_path / "run"), "--no-progress"]
    for extra, message in [
        (["--data", str(tmp_path)], f"--data: {tmp_path} is a directory, not a file"),
        (["--data", str(binary)], f"--data: {binary} is not UTF-8 text (byte 0)"),
        (["--data", str(data), "--valid-data", str(tmp_path / "empty.jsonl")], "--valid-data: "),
        (["--data", str(data), "--chat-template", str(tmp_path / "syntax.jinja")], "not valid Jinja (line 1"),
        (
            ["--data", str(data), "--chat-template", str(tmp_path / "refuses.jinja")],
            "the chat template refused a conversation: roles must alternate",
        ),
    ]:
        assert main(args + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
