"""Export to and import from Hugging Face's Llama format: `transformers` loads the export offline and
computes the same logits, the tokenizer and chat template agree, and import → export is lossless."""

from __future__ import annotations

import json
import os
import shutil

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it: no network, ever

import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

from curate.shards.bpe import load_tokenizer  # noqa: E402
from tests.train.conftest import documents  # noqa: E402
from tests.train.finetune_fixtures import INSTRUCTIONS, one_thread, pretrain_base, write_jsonl  # noqa: E402, F401
from train.checkpoint import load_weights, read_state  # noqa: E402
from train.cli import main  # noqa: E402
from train.data import DataSource  # noqa: E402
from train.evaluate import evaluate_checkpoint  # noqa: E402
from train.finetune.chat_template import TRANSCRIPT_CHAT_TEMPLATE, ChatFormat  # noqa: E402
from train.model import ModelConfig, Transformer  # noqa: E402
from train.serve.tokenizer import ServingTokenizer  # noqa: E402

HF_FILES = {
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What does the cat see?"},
    {"role": "assistant", "content": "The red house."},
    {"role": "user", "content": "And the dog?"},
]


@pytest.fixture(scope="module")
def bases(tmp_path_factory, shards):
    root = tmp_path_factory.mktemp("bases")
    return {
        "tied": pretrain_base(shards, root / "tied"),
        "untied": pretrain_base(shards, root / "untied", tie_embeddings=False),
    }


def our_model(checkpoint) -> Transformer:
    model = Transformer(ModelConfig(**read_state(checkpoint)["model"]))
    load_weights(checkpoint, model)
    return model.eval()


def hf_model(directory) -> LlamaForCausalLM:
    return LlamaForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32).eval()


@pytest.mark.parametrize("kind", ["tied", "untied"])
def test_transformers_loads_the_export_and_computes_the_same_logits(bases, kind, tmp_path):
    checkpoint = bases[kind]
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(checkpoint.parent.parent), "--hf", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == HF_FILES
    ours, theirs = our_model(checkpoint), hf_model(out)
    vocab = ours.cfg.vocab_size
    assert theirs.config.tie_word_embeddings == (kind == "tied") and theirs.config.vocab_size == vocab
    idx = torch.randint(0, vocab, (3, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = ours(idx)[..., :vocab], theirs(idx).logits
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-4


def test_the_exported_tokenizer_and_chat_template_agree(bases, tmp_path, tokenizer_file):
    checkpoint = bases["tied"]
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(checkpoint), "--hf", str(out), "--dtype", "bfloat16"]) == 0
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    ours = load_tokenizer(tokenizer_file)  # as curate tokenized the shards
    for text in documents(20, seed=5) + ["Ünïcödé, emoji 😀 and\ttabs\n\nnew lines"]:
        assert tokenizer(text)["input_ids"] == ours.encode(text).ids

    # A pretrain checkpoint has no template: the export chats as `train serve` serves it.
    chat = ChatFormat.from_checkpoint(checkpoint, default_template=TRANSCRIPT_CHAT_TEMPLATE)
    assert tokenizer.chat_template == TRANSCRIPT_CHAT_TEMPLATE
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert text == ServingTokenizer.from_checkpoint(checkpoint).apply_chat_template(CONVERSATION)
    assert text.endswith("Assistant:")
    ids = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    assert ids == chat.encode_prompt(CONVERSATION)

    config = json.loads((out / "config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == config["eos_token_id"] == chat.eos_id == tokenizer.eos_token_id
    assert load_file(out / "model.safetensors")["model.embed_tokens.weight"].dtype == torch.bfloat16


@pytest.mark.parametrize(("tied", "dtype"), [(False, torch.float32), (True, torch.bfloat16)])
def test_import_then_export_gives_back_the_same_tensors(tied, dtype, tmp_path, tokenizer_file, shards):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=320,  # the tokenizer's; not a multiple of 128: padded on import, trimmed on export
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
        tie_word_embeddings=tied,
        bos_token_id=0,
        eos_token_id=0,
    )
    source = tmp_path / "source"
    original = LlamaForCausalLM(config).to(dtype)
    original.save_pretrained(source)
    shutil.copyfile(tokenizer_file, source / "tokenizer.json")

    assert main(["import", "--hf", str(source), "--out", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000000"
    state = read_state(checkpoint)
    assert state["model"]["vocab_size"] == 320 and state["model"]["tie_embeddings"] == tied
    ours = our_model(checkpoint)
    idx = torch.randint(0, 320, (2, 40))
    with torch.no_grad():
        expected = original.float().eval()(idx).logits
        assert (ours(idx)[..., :320] - expected).abs().max() < 1e-4
    # The imported checkpoint loads wherever a pretrain checkpoint does (its tokenizer is the shards'),
    # and finetunes.
    (result,) = evaluate_checkpoint(checkpoint, [DataSource(shards)], max_samples=4, micro_batch_size=2)
    assert result.samples == 4
    data = write_jsonl(tmp_path / "sft.jsonl", INSTRUCTIONS)
    args = f"finetune sft --base {tmp_path / 'run'} --data {data} --out {tmp_path / 'sft'} --epochs 1"
    assert main([*args.split(), "--valid-fraction", "0", "--no-progress"]) == 0

    assert main(["export", "--checkpoint", str(checkpoint), "--hf", str(tmp_path / "back")]) == 0
    before, after = (
        load_file(source / "model.safetensors"),
        load_file(tmp_path / "back" / "model.safetensors"),
    )
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype and torch.equal(after[name], tensor), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "RoPE scaling 'llama3'"),
        ({"attention_bias": True}, "biases"),
        ({"model_type": "mistral"}, "model_type"),
        ({"hidden_size": None}, "config.json: lacks hidden_size; is it a Llama config.json?"),
    ],
)
def test_import_refuses_models_it_cannot_compute(tmp_path, capsys, change, message):
    config = {
        "model_type": "llama",
        "vocab_size": 300,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 128,
        **change,
    }
    config = {key: value for key, value in config.items() if value is not None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["import", "--hf", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_import_of_a_config_json_that_is_not_json_names_it(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{'model_type': 'llama'}")
    assert main(["import", "--hf", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert f"{tmp_path / 'config.json'}: not valid JSON (Expecting property name" in capsys.readouterr().err
