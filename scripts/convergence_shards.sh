#!/usr/bin/env bash
# Curated shards for issue #4's convergence run: the sample generator at --scale $SCALE (default 300),
# through pipelines/web.yaml unchanged except its input, its output dir and a 8,192-token vocabulary.
#   bash scripts/convergence_shards.sh            # → runs/convergence/out/shards
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-300}
W=runs/convergence
python scripts/make_sample_warc.py --scale "$SCALE" --out "$W/input"
python - "$W" <<'PY'
import sys, yaml
work = sys.argv[1]
config = yaml.safe_load(open("pipelines/web.yaml"))
config["input"]["paths"] = [f"{work}/input/crawl-*.warc.gz"]
config["output"]["dir"] = f"{work}/out"
config["output"]["rejects"] = False
next(s for s in config["stages"] if s["stage"] == "tokenize")["train"]["vocab_size"] = 8192
yaml.safe_dump(config, open(f"{work}/web.yaml", "w"), sort_keys=False)
PY
curate run "$W/web.yaml"
curate inspect "$W/out/shards" | head -20
