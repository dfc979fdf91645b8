#!/usr/bin/env bash
# Curated shards of real text for issue #4's convergence run, from what an offline machine has installed:
# the English man pages and the docstrings of this Python's standard library and site-packages, as WET
# files (scripts/local_text_to_wet.py), through pipelines/local_text.yaml.
#   bash scripts/local_text_shards.sh            # → runs/local_text/out/shards
set -euo pipefail
cd "$(dirname "$0")/.."
WET=runs/local_text/wet
rm -rf runs/local_text  # the sources are read afresh; a run over stale WET files would resume
PYLIB=$(python -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
python scripts/local_text_to_wet.py man --out "$WET"
python scripts/local_text_to_wet.py docstrings "$PYLIB" --out "$WET"
curate run pipelines/local_text.yaml
curate inspect runs/local_text/out/shards | head -20
