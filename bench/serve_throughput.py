"""Serving throughput: `train.serve`'s engine against HF transformers `generate`, in one run.

    python bench/serve_throughput.py --json runs/bench/serve-h100.json      # H100/H200, about 4 minutes
    python bench/serve_throughput.py --smoke                                # any machine, tiny sizes

Protocol (nano-vllm's bench.py): 256 requests whose prompt and output lengths are uniform in [100, 1024],
prompts of random token ids, EOS ignored (every request generates exactly its output length), seeded. The
model is ~0.47B parameters of our architecture (d 1024, 24 layers, 16 query / 4 KV heads, SwiGLU 4096,
vocabulary 50,304, untied), random weights, bf16. Decoding is greedy on both sides (nano-vllm samples at
temperature 0.6; the sampler is a small part of a step, and greedy lets the two sides' outputs be compared).

- engine: `LLM.from_model(...).generate(all 256 requests)`; tokens/s = output tokens / wall time, prefill
  included, after a warm-up (torch.compile and the CUDA-graph capture happen at start-up, timed apart).
- HF: `LlamaForCausalLM` with the same weights (q/k/v/o, gate/up/down and the norms map one to one; both use
  rotate-half RoPE), SDPA attention, default dynamic cache; static batches of --hf-batch-size requests,
  left-padded, each batch generating its longest output length. Its tokens/s counts only the tokens the
  requests asked for (what a client gets), over the same wall time; the padded total is printed too. It runs
  the first --hf-requests requests (all by default): a rate measured on a prefix of the same distribution.
- batch-1 decode: one request (512-token prompt, 256 tokens) through the engine; the median decode step
  (CPU scheduling and sampling included; greedy steps run one ahead, so the host's share of a step
  overlaps the GPU's share of the next) and the CUDA-graph replay alone, against the memory floor
  (bytes of the weights read per step + the KV cache at the mean context) / the bandwidth of a 2 GiB
  device-to-device copy measured in the same run (bytes read + bytes written, over its time).

Targets: engine ≥ 10× HF; batch-1 decode ≤ 3× the floor. On a machine without CUDA only --smoke runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train.model import ModelConfig, Transformer  # noqa: E402
from train.serve import LLM, SamplingParams, pdl  # noqa: E402
from train.serve.sequence import Sequence  # noqa: E402

BENCH_MODEL = dict(
    vocab_size=50_257,
    n_layer=24,
    d_model=1024,
    n_head=16,
    n_kv_head=4,
    ffn_hidden=4096,
    max_seq_len=2048,
    tie_embeddings=False,
)
SMOKE_MODEL = dict(
    vocab_size=500, n_layer=2, d_model=64, n_head=4, n_kv_head=2, ffn_hidden=192, max_seq_len=128
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Bytes/s of a device-to-device copy, counting bytes read plus bytes written (median of 10)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    times = []
    for i in range(13):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 2 * nbytes / statistics.median(times)


def make_requests(n: int, lo: int, hi: int, vocab: int, seed: int) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)
    return [
        ([rng.randrange(vocab) for _ in range(rng.randint(lo, hi))], rng.randint(lo, hi)) for _ in range(n)
    ]


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True, detokenize=False)


def bench_engine(llm: LLM, requests: list[tuple[list[int], int]], device: torch.device) -> dict:
    """All requests at once through the engine's step loop (what `LLM.generate` runs), with the wall time
    split into prefill steps and decode steps (a decode step's GPU work overlaps the host's handling of
    the step before it, so the two are not timed apart)."""
    llm.generate([requests[0][0][:16]] * 2, greedy(8))  # warm-up: allocator, first prefill
    engine = llm.engine
    split = {"prefill_s": 0.0, "prefill_steps": 0, "decode_s": 0.0, "decode_steps": 0, "decode_rows": 0}
    sync(device)
    start = time.perf_counter()
    for prompt, n in requests:
        engine.add_request(prompt, greedy(n))
    while engine.has_unfinished():
        step_start = time.perf_counter()
        outs = engine.step()
        kind = "prefill" if all(o.seq.num_output_tokens == 1 for o in outs) else "decode"
        split[f"{kind}_s"] += time.perf_counter() - step_start
        split[f"{kind}_steps"] += 1
        split["decode_rows"] += len(outs) if kind == "decode" else 0
    elapsed = time.perf_counter() - start
    tokens = sum(n for _, n in requests)
    return {"seconds": elapsed, "output_tokens": tokens, "tokens_per_s": tokens / elapsed, **split}


def bench_batch1(llm: LLM, vocab: int, prompt_len: int, steps: int, device: torch.device) -> dict:
    """Per-step times of one request's decode; the CUDA graph of batch 1 replayed alone. Where the kernels
    launch with PDL (train/serve/pdl.py), the same again with the graphs recaptured without it: the A/B on
    one machine."""
    result = batch1_steps(llm, vocab, prompt_len, steps, device)
    runner = llm.engine.runner
    if runner.graphs and pdl.active(runner.kv_cache):
        pdl.ENABLED = False
        runner.capture_graphs()
        result["without_pdl"] = batch1_steps(llm, vocab, prompt_len, steps, device)
        pdl.ENABLED = True
        runner.capture_graphs()
    return result


def batch1_steps(llm: LLM, vocab: int, prompt_len: int, steps: int, device: torch.device) -> dict:
    engine = llm.engine
    rng = random.Random(1)
    engine.add_request([rng.randrange(vocab) for _ in range(prompt_len)], greedy(steps))
    times = []
    while engine.has_unfinished():
        start = time.perf_counter()
        engine.step()  # returns after the sampled token reached the host: the step is done
        times.append(time.perf_counter() - start)
    result = {"step_ms": 1e3 * statistics.median(times[1:]), "mean_context": prompt_len + steps / 2}
    if 1 in engine.runner.graphs:
        graph = engine.runner.graphs[1][0]  # its inputs still describe the last step: replaying is harmless
        sync(device)
        start = time.perf_counter()
        for _ in range(100):
            graph.replay()
        sync(device)
        result["graph_ms"] = 1e3 * (time.perf_counter() - start) / 100
    return result


def bench_full_batch(llm: LLM, batch: int, context: int, device: torch.device) -> dict:
    """One decode step of `batch` sequences of `context` tokens (the engine's KV cache, idle after the
    run, holds them): the model runner's step (inputs built on the host, then the forward) and, on CUDA,
    the graph replay alone. Where the time of the full run goes: GPU work or host overhead."""
    runner = llm.engine.runner
    blocks = -(-context // runner.block_size)
    seqs = []
    for i in range(batch):
        seq = Sequence(str(i), [1] * context, greedy(1), 1, None, None)
        seq.block_table = list(range(i * blocks, (i + 1) * blocks))
        seqs.append(seq)
    runner.decode(seqs)
    sync(device)
    start = time.perf_counter()
    for _ in range(20):
        runner.decode(seqs)
    sync(device)
    result = {"batch": batch, "context": context, "step_ms": 1e3 * (time.perf_counter() - start) / 20}
    graph = next((runner.graphs[n] for n in sorted(runner.graphs) if n >= batch), None)
    if graph is not None:
        start = time.perf_counter()
        for _ in range(20):
            graph[0].replay()
        sync(device)
        result["graph_ms"] = 1e3 * (time.perf_counter() - start) / 20
    return result


def decode_bytes(llm: LLM, cfg: ModelConfig, context: float) -> float:
    """Bytes one batch-1 decode step must read: every weight matrix once (the token embedding only for its
    row when untied), and K and V of `context` tokens in every layer."""
    runner = llm.engine.runner
    weights = [t for layer in runner.layers for t in vars(layer).values()] + [
        runner.final_norm,
        runner.lm_head,
    ]
    weight_bytes = sum(t.numel() * t.element_size() for t in weights)
    kv_bytes = 2 * cfg.n_layer * context * cfg.n_kv_head * cfg.head_dim * runner.kv_cache.element_size()
    return weight_bytes + kv_bytes


def hf_model(model: Transformer, device: torch.device, dtype: torch.dtype):
    """A LlamaForCausalLM holding `model`'s weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = model.cfg
    config = LlamaConfig(
        vocab_size=cfg.padded_vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_hidden,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
        attn_implementation="sdpa",
    )
    names = {"attn.wq": "self_attn.q_proj", "attn.wk": "self_attn.k_proj", "attn.wv": "self_attn.v_proj"}
    names |= {"attn.wo": "self_attn.o_proj", "ffn.w_gate": "mlp.gate_proj", "ffn.w_up": "mlp.up_proj"}
    names |= {
        "ffn.w_down": "mlp.down_proj",
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
    }
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            module = rest.rsplit(".", 1)[0]
            state[f"model.layers.{i}.{names[module]}.weight"] = value
        else:
            state[
                {"tok_emb.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}.get(
                    key, "lm_head.weight"
                )
            ] = value
    with torch.device(device):
        hf = LlamaForCausalLM(config).to(dtype)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    # A tied lm_head has no key of its own: it is the embedding.
    assert not unexpected and set(missing) <= ({"lm_head.weight"} if cfg.tie_embeddings else set()), (
        missing,
        unexpected,
    )
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    return hf.eval()


@torch.inference_mode()
def bench_hf(hf, requests: list[tuple[list[int], int]], batch_size: int, device: torch.device) -> dict:
    useful = padded = 0
    sync(device)
    start = time.perf_counter()
    for b in range(0, len(requests), batch_size):
        batch = requests[b : b + batch_size]
        width = max(len(p) for p, _ in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, (prompt, _) in enumerate(batch):  # left padding, as decoder-only generation needs
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        new = max(n for _, n in batch)
        out = hf.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
        )
        assert out.shape[1] == width + new
        useful += sum(n for _, n in batch)
        padded += len(batch) * new
    sync(device)
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "output_tokens": useful,
        "tokens_per_s": useful / elapsed,
        "padded_tokens_per_s": padded / elapsed,
    }


@torch.inference_mode()
def agreement(
    model: Transformer, hf, llm: LLM, requests: list[tuple[list[int], int]], device: torch.device
) -> dict:
    """How close the two implementations are: last-position logits of our Transformer and of HF on one
    prompt, and the greedy tokens the engine and HF generate for a few prompts (bf16 drifts eventually)."""
    prompt = torch.tensor([requests[0][0][:256]], device=device)
    ours = model(prompt)[0, -1].float()
    theirs = hf(prompt).logits[0, -1].float()
    rel = ((ours - theirs).norm() / theirs.norm()).item()
    n, steps = 4, 32
    engine_outs = llm.generate([p for p, _ in requests[:n]], greedy(steps))
    same_prefix = []
    for (p, _), out in zip(requests[:n], engine_outs, strict=True):
        hf_out = hf.generate(
            input_ids=torch.tensor([p], device=device),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
        )
        hf_tokens = hf_out[0, len(p) :].tolist()
        same_prefix.append(
            next((i for i, (a, b) in enumerate(zip(hf_tokens, out.token_ids, strict=True)) if a != b), steps)
        )
    return {"logits_rel_err": rel, "greedy_same_prefix": same_prefix, "greedy_steps": steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model and few requests (runs on CPU)")
    parser.add_argument("--requests", type=int, help="requests (default 256; smoke 8)")
    parser.add_argument("--hf-requests", type=int, help="requests HF generate runs (default: all)")
    parser.add_argument("--hf-batch-size", type=int, help="HF static batch (default 64; smoke 4)")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="engine's running batch")
    parser.add_argument("--no-hf", action="store_true", help="skip the HF side")
    parser.add_argument(
        "--enforce-eager", action="store_true", help="engine without torch.compile and CUDA graphs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("serve_throughput: no CUDA device; run with --smoke for a CPU check of the script")
        return 0
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    lo, hi = (8, 32) if args.smoke else (100, 1024)
    n_requests = args.requests or (8 if args.smoke else 256)
    hf_batch = args.hf_batch_size or (4 if args.smoke else 64)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"

    bandwidth = copy_bandwidth(device, (64 << 20) if args.smoke else (2 << 30))
    torch.manual_seed(args.seed)
    cfg = ModelConfig(**(SMOKE_MODEL if args.smoke else BENCH_MODEL))
    with torch.device(device):
        model = Transformer(cfg).to(dtype).eval()
    requests = make_requests(n_requests, lo, hi, cfg.vocab_size, args.seed)
    print(
        f"{name} · copy bandwidth {bandwidth / 1e9:,.0f} GB/s · model {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B "
        f"params, {dtype} · {n_requests} requests, prompt and output lengths uniform in [{lo}, {hi}]",
        flush=True,
    )

    start = time.perf_counter()
    llm = LLM.from_model(
        model,
        None,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=max(8192, cfg.max_seq_len),
        enforce_eager=args.enforce_eager,
    )
    startup = time.perf_counter() - start
    print(f"engine start-up (weights, KV cache, compile, CUDA graphs): {startup:.1f} s", flush=True)
    ours = bench_engine(llm, requests, device)
    print(
        f"engine: {ours['output_tokens']:,} tokens in {ours['seconds']:.1f} s = {ours['tokens_per_s']:,.0f} tok/s · "
        f"prefill {ours['prefill_s']:.1f} s in {ours['prefill_steps']} steps · decode {ours['decode_s']:.1f} s in "
        f"{ours['decode_steps']} steps (mean batch {ours['decode_rows'] / max(1, ours['decode_steps']):.0f})",
        flush=True,
    )
    b1 = bench_batch1(
        llm, cfg.vocab_size, (hi + lo) // 4 if args.smoke else 512, 16 if args.smoke else 256, device
    )
    floor_ms = 1e3 * decode_bytes(llm, cfg, b1["mean_context"]) / bandwidth
    full = bench_full_batch(llm, 8 if args.smoke else args.max_num_seqs, 24 if args.smoke else 1100, device)
    full["floor_ms"] = 1e3 * decode_bytes(llm, cfg, full["batch"] * full["context"]) / bandwidth

    results = {
        "device": name,
        "bandwidth_TBps": bandwidth / 1e12,
        "model": cfg.model_dump(),
        "requests": n_requests,
        "engine_startup_s": startup,
        "engine": ours,
        "batch1": {**b1, "floor_ms": floor_ms},
        "full_batch_decode": full,
    }
    if not args.no_hf:
        hf = hf_model(model, device, dtype)
        results["agreement"] = agreement(model, hf, llm, requests, device)
        del llm  # the engine's KV cache makes room for HF's
        if device.type == "cuda":
            torch.cuda.empty_cache()
        hf_requests = requests[: args.hf_requests or n_requests]
        results["hf"] = {
            **bench_hf(hf, hf_requests, hf_batch, device),
            "requests": len(hf_requests),
            "batch_size": hf_batch,
        }

    print()
    print(f"| {name} | output tok/s | notes |")
    print("|---|---:|---|")
    print(
        f"| engine | {ours['tokens_per_s']:,.0f} | {n_requests} requests, continuous batching, max {args.max_num_seqs} running |"
    )
    if "hf" in results:
        hf_r = results["hf"]
        print(
            f"| HF generate | {hf_r['tokens_per_s']:,.0f} | first {hf_r['requests']} requests, static batches of {hf_batch}; "
            f"{hf_r['padded_tokens_per_s']:,.0f} tok/s counting padding |"
        )
        print(f"| ratio | {ours['tokens_per_s'] / hf_r['tokens_per_s']:.1f}× | target ≥ 10× |")
        agree = results["agreement"]
        print(
            f"\nagreement: last-token logits rel. error {agree['logits_rel_err']:.2e} (ours vs HF, one 256-token prompt); "
            f"greedy tokens equal for the first {agree['greedy_same_prefix']} of {agree['greedy_steps']} (4 prompts)"
        )
    graph = (
        f", CUDA graph replay alone {b1['graph_ms']:.3f} ms ({b1['graph_ms'] / floor_ms:.2f}× floor)"
        if "graph_ms" in b1
        else ""
    )
    print(
        f"batch-1 decode: {b1['step_ms']:.3f} ms/step, {b1['step_ms'] / floor_ms:.2f}× the floor of {floor_ms:.3f} ms "
        f"(weights + KV at {b1['mean_context']:.0f} tokens / {bandwidth / 1e12:.2f} TB/s){graph}; target ≤ 3×"
    )
    if "without_pdl" in b1:
        off = b1["without_pdl"]
        print(
            f"  the same without PDL: {off['step_ms']:.3f} ms/step ({off['step_ms'] / floor_ms:.2f}×), graph "
            f"{off['graph_ms']:.3f} ms; PDL saves {off['step_ms'] - b1['step_ms']:.3f} ms a step"
        )
    graph = f" (CUDA graph replay alone {full['graph_ms']:.2f} ms)" if "graph_ms" in full else ""
    print(
        f"decode step at batch {full['batch']}, {full['context']} tokens each: {full['step_ms']:.2f} ms{graph}; "
        f"memory floor {full['floor_ms']:.2f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
