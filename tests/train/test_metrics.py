"""MFU inputs (FLOPs per token, device peaks), the learning-rate schedule, the metrics log."""

from __future__ import annotations

import pytest

from train.metrics import MetricsLog, flops_per_token, peak_flops, read_metrics
from train.model import preset_config
from train.optim import lr_at


def test_flops_per_token_is_6n_plus_attention():
    cfg = preset_config("124m", vocab_size=50_257)
    # N, as MFU_CONVENTION states it: every parameter but the embedding lookup, so the RMSNorm gains
    # (2·768 a block and the final 768, 0.02% of N) count, as in nanoGPT's estimate.
    body = 12 * (4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768) + 768
    matmul_params = body + 50_304 * 768  # the (tied) output projection is a matmul; the lookup is not
    assert flops_per_token(cfg, 1024) == 6 * matmul_params + 12 * 12 * 768 * 1024


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA L40S", 362),
        ("NVIDIA L4", 121),
    ],
)
def test_peak_is_looked_up_from_the_device_name(name, tflops):
    assert peak_flops(name)[0] == tflops * 1e12


def test_an_unknown_device_has_no_peak():
    assert peak_flops("Tesla T4") is None


def test_schedule_warms_up_then_follows_a_cosine_to_min_lr():
    rates = [lr_at(s, lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110) for s in range(111)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.55)
    assert rates[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))


def test_resumed_log_drops_the_steps_that_will_be_run_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in range(1, 8):
        log.write("train", step=step, loss=1.0 / step)
    log.close()
    MetricsLog(path, resume_step=5).close()
    assert [r["step"] for r in read_metrics(path, "train")] == [1, 2, 3, 4, 5]
    MetricsLog(path).close()  # a new run starts a new log
    assert read_metrics(path) == []
