#!/usr/bin/env bash
# Rebuild data/models/quality-sample.ftz, the quality model that pipelines/web.yaml's `classifier` uses.
#
# Bootstrapping recipe: run web.yaml's stages up to the heuristic filters and dedup (everything before
# `pii`, so no model is needed yet) on the bundled sample, then train fastText with the surviving
# documents as hq and the documents the heuristic filters rejected as lq. The same two commands,
# pointed at a real crawl, train a real model:
#
#   curate run BOOTSTRAP.yaml
#   curate train-classifier --positive OUT/dataset --negative OUT/rejects/gopher_quality ... --out models/quality.bin
#
# The sample holds ~40 good pages and a few bad ones, so this model is a working default for the
# sample, not a quality judgement for other data. Small dimensions, a small n-gram table and
# quantization keep the file small; training is single-threaded and seeded, so reruns write the same file.
# Run from the repository root: bash scripts/train_sample_classifier.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/bootstrap"

python - "$work/bootstrap.yaml" "$out" <<'EOF'
import sys

import yaml

path, out = sys.argv[1:]
config = yaml.safe_load(open("pipelines/web.yaml"))
stages = config["stages"]
cut = next(i for i, s in enumerate(stages) if s["stage"] == "pii")
config["stages"] = stages[:cut] + [{"stage": "write_parquet", "path": "dataset"}]
config["output"] = {"dir": out, "rejects": True}
config["executor"]["dashboard_address"] = ":0"
open(path, "w").write(yaml.safe_dump(config, sort_keys=False))
EOF

curate run "$work/bootstrap.yaml"

negatives=()
for stage in gopher_repetition gopher_quality c4 fineweb; do
  if [ -d "$out/rejects/$stage" ]; then negatives+=(--negative "$out/rejects/$stage"); fi
done

curate train-classifier --positive "$out/dataset" "${negatives[@]}" \
  --out data/models/quality-sample.ftz \
  --valid-fraction 0.2 --dim 16 --epoch 25 --lr 0.5 --word-ngrams 2 --bucket 10000 --quantize
