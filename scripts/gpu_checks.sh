#!/usr/bin/env bash
# GPU checks and benchmarks of issues #4, #5 and #7 on one H100/H200 (the device tool's nvidia-h200), in
# one call, each step under its own time limit; logs and JSON results go to $OUT (default runs/bench/gpu).
#   STEPS="tests minhash serve" bash scripts/gpu_checks.sh
#   STEPS="converge" DATA=runs/convergence/out/shards bash scripts/gpu_checks.sh
#   STEPS="converge" DATA=runs/local_text/out/shards CONVERGE_FLAGS="--micro-batch-size 8 --global-batch-size 8" bash scripts/gpu_checks.sh
# Steps: tests   the CUDA tests (MinHash kernels vs CPU bits, Triton decode attention, CUDA-graph engine)
#        minhash bench/minhash_throughput.py's GPU path: signatures equal to the CPU path's, speed-up
#        serve   bench/serve_throughput.py: engine vs HF generate, nano-vllm protocol, batch-1 floor
#                ($SERVE_FLAGS: its options, e.g. "--no-hf --requests 64" for the batch-1 figures alone)
#        decode  scripts/serve_decode_profile.py: GPU time per kernel of the batch-1 decode graph
#        matvec  bench/matvec_throughput.py: each fused decode matvec against cuBLAS, per shape
#        tiles   scripts/matvec_tile_sweep.py: every tile of a grid, per matvec shape, at one row
#        sweep   scripts/train_kernel_sweep.py: the loss and RoPE kernels' tiles ($SWEEP: which, default both)
#        train   bench/train_throughput.py: 124m, ours (with and without the RoPE kernels) against HF
#                ($TRAIN_MODELS: which, in order, variants joined by + measured together; $TRAIN_FLAGS:
#                more options, e.g. "--profile 5"; $TRAIN_LIMIT: seconds, default 400, ~25 s a model)
#        converge  train pretrain, 124m, $CONVERGE_STEPS steps on $DATA (curated shards), loss curve PNG
# The image lacks pydantic, dask & co: scripts/pack_device_wheels.sh puts their wheels in .whl/ (carry it).
set -u
STEPS=${STEPS:-tests minhash serve}
OUT=${OUT:-runs/bench/gpu}
mkdir -p "$OUT"
if ! python3 -c "import pydantic, distributed" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=16
T="timeout -k 10"
step() { [[ " $STEPS " == *" $1 "* ]]; }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } > "$OUT/env.log" 2>&1

if step tests; then
    $T 330 python3 -m pytest -q -p no:cacheprovider tests/train/test_serve_gpu.py tests/train/test_rope_kernels_gpu.py tests/train/test_triton_kernels_gpu.py \
        "tests/curate/test_dedup_fuzzy.py::test_cuda_signatures_match_cpu" > "$OUT/tests.log" 2>&1
    echo "tests rc=$?" >> "$OUT/env.log"
fi
if step minhash; then
    $T 150 python3 bench/minhash_throughput.py --gpu-docs 400000 --json "$OUT/minhash_gpu.json" > "$OUT/minhash.log" 2>&1
    echo "minhash rc=$?" >> "$OUT/env.log"
fi
if step serve; then
    $T 330 python3 bench/serve_throughput.py --json "$OUT/serve.json" ${SERVE_FLAGS:-} > "$OUT/serve.log" 2>&1
    echo "serve rc=$?" >> "$OUT/env.log"
fi
if step decode; then
    $T 150 python3 scripts/serve_decode_profile.py --json "$OUT/decode_profile.json" > "$OUT/decode.log" 2>&1
    echo "decode rc=$?" >> "$OUT/env.log"
fi
if step matvec; then
    $T 150 python3 bench/matvec_throughput.py --json "$OUT/matvec.json" > "$OUT/matvec.log" 2>&1
    echo "matvec rc=$?" >> "$OUT/env.log"
fi
if step tiles; then
    $T 300 python3 scripts/matvec_tile_sweep.py --json "$OUT/tiles.json" > "$OUT/tiles.log" 2>&1
    echo "tiles rc=$?" >> "$OUT/env.log"
fi
if step sweep; then
    $T 300 python3 scripts/train_kernel_sweep.py --kernels "${SWEEP:-ce,rope}" --json "$OUT/kernel_sweep.json" > "$OUT/sweep.log" 2>&1
    echo "sweep rc=$?" >> "$OUT/env.log"
fi
if step train; then
    $T "${TRAIN_LIMIT:-400}" python3 bench/train_throughput.py --models ${TRAIN_MODELS:-hf,ours,ours-torch-rope} --no-sdpa \
        ${TRAIN_FLAGS:-} --json "$OUT/train.json" > "$OUT/train.log" 2>&1
    echo "train rc=$?" >> "$OUT/env.log"
fi
if step converge; then
    rm -rf /tmp/converge  # a run directory left there would be resumed
    $T 540 python3 -m train.cli pretrain --data "${DATA:?set DATA=shard dir}" --preset 124m --out /tmp/converge \
        --max-steps "${CONVERGE_STEPS:-2000}" \
        --micro-batch-size 16 --global-batch-size 16 --warmup-steps 100 --eval-every 200 --ckpt-every 0 \
        --log-every 20 --no-progress ${CONVERGE_FLAGS:-} > "$OUT/converge.log" 2>&1
    echo "converge rc=$?" >> "$OUT/env.log"
    cp /tmp/converge/metrics.jsonl /tmp/converge/*.png "$OUT/" 2>/dev/null
fi
cat "$OUT/env.log"
