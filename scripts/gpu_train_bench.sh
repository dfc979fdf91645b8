#!/usr/bin/env bash
# Issue #4's GPU measurements on a 2-GPU machine (the device tool's nvidia-h200-x2), phase by phase:
#   0. attention check (unless ATTN is set): cuDNN-first SDPA (train.model's order) against flash-first,
#      outputs and gradients at the 124m and 1b shapes; if it fails, every run below uses --attention flash.
#   A. one process per GPU at once. GPU 0: `train pretrain` alone, 124m, global batch 32 = 16 × 2
#      accumulation (the 1-GPU baseline of B), then our model at micro-batch 32 (train_throughput).
#      GPU 1: HF's LlamaForCausalLM and ours at micro-batch 16 (train_throughput).
#   B. torchrun, 2 GPUs, DDP: the same run as A's baseline with global batch 32 = 16 × 2 GPUs.
#   C. torchrun, 2 GPUs, FSDP2: the 1b preset, sequence 2048, 8 × 2 samples a step.
#   D. scaling again at global batch 64 (1 GPU: 16 × 4; 2 GPUs: 16 × 2 × 2), the 1-GPU run alongside,
#      on GPU 1, ours with flash-first attention (the A/B of cuDNN) and ours profiled kernel by kernel.
#   E. scaling at micro-batch 64, global batch 128 (1 GPU: 64 × 2; 2 GPUs: 64 × 1 × 2).
# Every phase has its own time limit. Logs go to $OUT/*.log as they are written; after each phase the
# JSON results are merged into $OUT/results.json.
#
#   bash scripts/gpu_train_bench.sh                 # from the repo root; OUT defaults to runs/bench/gpu_train
#   PHASES="D" ATTN=cudnn bash scripts/gpu_train_bench.sh
#
# On the device machine the image lacks pydantic & co: their wheels travel in .whl/ (carry it).
set -u
PHASES=${PHASES:-A B C D E}
OUT=${OUT:-runs/bench/gpu_train}
W=/tmp/gpu_train_bench
mkdir -p "$OUT" "$W"
if ! python3 -c "import pydantic" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=16
T="timeout -k 10"

collect() {
    python3 - "$W" "$OUT/results.json" <<'EOF'
import json, pathlib, sys
found = {p.stem: json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))}
pathlib.Path(sys.argv[2]).write_text(json.dumps(found, indent=2) + "\n")
EOF
}

{
    date -u
    nvidia-smi --query-gpu=index,name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version(), 'transformers', transformers.__version__)"
} > "$OUT/env.log" 2>&1

if [ -z "${ATTN:-}" ]; then
ATTN=cudnn
$T 60 python3 - >> "$OUT/env.log" 2>&1 <<'EOF' || ATTN=flash
import sys, torch, torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from train.model import attention_kernels
dev = torch.device("cuda")
worst = 0.0
for b, h, kv, t in [(16, 12, 12, 1024), (8, 32, 8, 2048)]:
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, n, t, 64, device=dev, dtype=torch.bfloat16, requires_grad=True) for n in (h, kv, kv))
    g = torch.randn(b, h, t, 64, device=dev, dtype=torch.bfloat16)
    res = []
    default = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    for ctx in (attention_kernels(dev), sdpa_kernel(default, set_priority=True)):
        with ctx:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=kv != h)
        out.backward(g)
        res.append([x.detach().float() for x in (out, q.grad, k.grad, v.grad)])
        q.grad = k.grad = v.grad = None
    errs = [((a - r).norm() / r.norm()).item() for a, r in zip(*res)]
    worst = max(worst, *errs)
    print(f"attention check {b}x{h}/{kv}x{t}: rel err out, dq, dk, dv vs flash-first", [f"{e:.1e}" for e in errs])
sys.exit(0 if worst < 2e-2 else 3)
EOF
fi
echo "attention order for all runs: $ATTN" | tee -a "$OUT/env.log"

phase() { [[ " $PHASES " == *" $1 "* ]]; }

# A. one process per GPU
if phase A; then
(
    CUDA_VISIBLE_DEVICES=0 $T 110 python3 bench/pretrain_gpu.py --steps 60 --warmup 10 --micro-batch-size 16 --accum 2 \
        --attention $ATTN --out $W/run --json $W/pretrain_1gpu.json > "$OUT/a0_pretrain_1gpu.log" 2>&1
    CUDA_VISIBLE_DEVICES=0 $T 60 python3 bench/train_throughput.py --models ours --micro-batch-size 32 --no-sdpa \
        --attention $ATTN --json $W/throughput_mb32.json > "$OUT/a0_throughput_mb32.log" 2>&1
) &
CUDA_VISIBLE_DEVICES=1 $T 160 python3 bench/train_throughput.py --models hf,ours --micro-batch-size 16 \
    --attention $ATTN --json $W/throughput_mb16.json > "$OUT/a1_throughput_mb16.log" 2>&1 &
wait
collect
fi

# B. DDP on both GPUs, same global batch as A's baseline
phase B && $T 95 torchrun --standalone --nproc_per_node 2 bench/pretrain_gpu.py --steps 60 --warmup 10 --micro-batch-size 16 \
    --attention $ATTN --out $W/run --json $W/pretrain_2gpu.json --compare $W/pretrain_1gpu.json > "$OUT/b_ddp_2gpu.log" 2>&1
collect

# C. FSDP2, 1b
phase C && $T 110 torchrun --standalone --nproc_per_node 2 bench/pretrain_gpu.py --preset 1b --parallel fsdp --seq-len 2048 \
    --micro-batch-size 8 --steps 40 --warmup 10 --attention $ATTN --out $W/fsdp --json $W/fsdp_1b_2gpu.json \
    > "$OUT/c_fsdp_1b.log" 2>&1
collect

# One scaling measurement, global batch GLOBAL at micro-batch MICRO: `scaling_1gpu GLOBAL MICRO ACCUM` on
# GPU 0, then `scaling_2gpu GLOBAL MICRO ACCUM/2` on both, compared with it.
scaling_1gpu() {
    CUDA_VISIBLE_DEVICES=0 $T 90 python3 bench/pretrain_gpu.py --steps 30 --warmup 10 --micro-batch-size $2 --accum $3 \
        --attention $ATTN --out $W/run$1 --json $W/pretrain$1_1gpu.json > "$OUT/pretrain$1_1gpu.log" 2>&1
}
scaling_2gpu() {
    $T 90 torchrun --standalone --nproc_per_node 2 bench/pretrain_gpu.py --steps 30 --warmup 10 --micro-batch-size $2 \
        --accum $3 --attention $ATTN --out $W/run$1 --json $W/pretrain$1_2gpu.json --compare $W/pretrain$1_1gpu.json \
        > "$OUT/ddp$1_2gpu.log" 2>&1
}

# D. scaling at global batch 64; alongside the 1-GPU run, the attention A/B and a kernel profile
if phase D; then
    scaling_1gpu 64 16 4 &
    (
        CUDA_VISIBLE_DEVICES=1 $T 50 python3 bench/train_throughput.py --models ours --no-sdpa --attention flash \
            --json $W/throughput_flash.json > "$OUT/d1_throughput_flash.log" 2>&1
        CUDA_VISIBLE_DEVICES=1 $T 50 python3 bench/train_throughput.py --models ours --no-sdpa --attention $ATTN \
            --steps 10 --profile 5 --json $W/throughput_profile.json > "$OUT/d1_profile.log" 2>&1
    ) &
    wait
    scaling_2gpu 64 16 2
    collect
fi

# E. scaling at micro-batch 64: a 1-GPU step of ~100 ms (bench/RESULTS.md) for the all-reduce to hide behind
if phase E; then
    scaling_1gpu 128 64 2
    scaling_2gpu 128 64 1
    collect
fi

for f in "$OUT"/*.log; do echo "=== $f"; tail -n 8 "$f"; done
