"""What a run reports: FLOPs per token and MFU (with their convention), the JSONL log and the loss curve.

MFU convention (PaLM appendix B, as torchtitan): a token costs 6·N + 12·L·d·T FLOPs for forward and
backward, where N is the parameters that take part in matmuls (every parameter but the token embedding
table, whose lookup is not a matmul; a tied table still counts once, as the output projection), L the
layers, d the model width and T the sequence length (the attention scores and their weighted sum; the
causal mask's skipped half is not subtracted). MFU = tokens/s per GPU × FLOPs per token / the GPU's dense
bf16 peak, looked up from the device name. On a CPU, or a GPU not in the table, MFU is reported as n/a.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from train.model import ModelConfig, count_params

# Dense (no sparsity) bf16 tensor-core peaks from the vendor datasheets, in TFLOPS. First match wins,
# so the specific variants come before the family name.
PEAK_BF16_TFLOPS: list[tuple[str, str, float]] = [
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H100.*NVL", "H100 NVL", 835.0),
    (r"GH200", "GH200", 989.0),
    (r"H200", "H200", 989.0),
    (r"H100", "H100 SXM", 989.0),
    (r"H800", "H800", 989.0),
    (r"B200", "B200", 2250.0),
    (r"A100", "A100", 312.0),
    (r"A800", "A800", 312.0),
    (r"L40S", "L40S", 362.0),
    (r"\bL4\b", "L4", 121.0),
    (r"MI300X", "MI300X", 1307.0),
]

MFU_CONVENTION = (
    "MFU = tokens/s/GPU × (6·N + 12·L·d·T) / peak dense bf16 FLOPS; N = matmul parameters "
    "(all but the token-embedding lookup)"
)


def peak_flops(device_name: str) -> tuple[float, str] | None:
    """(peak dense bf16 FLOP/s, the table's name for it) for a CUDA device name, or None if unknown."""
    for pattern, label, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return tflops * 1e12, label
    return None


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token, forward and backward: 6·N + 12·L·d·T (see the module docstring)."""
    matmul_params = count_params(cfg, embeddings=False) + cfg.padded_vocab_size * cfg.d_model
    return 6.0 * matmul_params + 12.0 * cfg.n_layer * cfg.d_model * seq_len


class MetricsLog:
    """`metrics.jsonl`: one JSON object per line, flushed as written, each with a `kind`
    (`start`, `train`, `valid`, `resume`, `end`)."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.exists():
            self._truncate_after(resume_step)
        elif resume_step is None:
            path.unlink(missing_ok=True)
        self._fh = open(path, "a")  # noqa: SIM115 - closed in close()

    def _truncate_after(self, step: int) -> None:
        # Steps after the checkpoint were run by the interrupted process and will be run again.
        kept = [
            line for line in self.path.read_text().splitlines() if json.loads(line).get("step", 0) <= step
        ]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, kind: str, **record) -> None:
        self._fh.write(json.dumps({"kind": kind, **record}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: Path, kind: str | None = None) -> list[dict]:
    """The records of a `metrics.jsonl`, optionally only those of one kind."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in records if kind is None or r["kind"] == kind]


def plot_loss_curve(metrics_path: Path, png_path: Path) -> None:
    """Train and valid loss against step, to a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = read_metrics(metrics_path, "train")
    valid = read_metrics(metrics_path, "valid")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train", linewidth=1)
    if valid:
        ax.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="valid", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path.with_name(png_path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)
