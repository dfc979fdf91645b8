#!/usr/bin/env bash
# Wheels for scripts/gpu_checks.sh and gpu_train_bench.sh: what curate and train import beyond the
# device image (which has torch, numpy, triton, transformers, pandas, pyarrow, matplotlib, rich, PyYAML
# and safetensors, checked 2026-12-04), for Python 3.12, into .whl/ (ignored; carry it: ~24 MiB of a
# run's 64). That is requirements/gpu-device.txt without its RAPIDS and CUDA entries, which only
# scripts/gpu_cudf_bringup.sh needs (it packs those in chunks), and without the spaCy and Presidio stack
# (PII redaction has no GPU path).
#   bash scripts/pack_device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
grep -v -E '^(#|numpy|pandas|bokeh|xyzservices|nvtx|numba|nvidia|rapids|lib|cudf|pylibcudf|dask-cudf|rmm|cachetools)' \
    requirements/gpu-device.txt |
    grep -v -E '^(spacy|blis|thinc|srsly|cymem|preshed|murmurhash|wasabi|weasel|confection|catalogue|cloudpathlib|smart_open|presidio|phonenumbers|cryptography|cffi|pycparser)' \
    > .whl/requirements.txt
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 \
    manylinux2010 manylinux_2_5 manylinux1; do platforms+=(--platform "${p}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl -r .whl/requirements.txt
du -sh .whl
