import pytest
import torch

from cityseg.config import EfficiencyConfig
from cityseg.efficiency import efficiency_score, latency_metrics


def test_score_is_dice_per_tflop_above_the_gate():
    # Dice 0.5 at 50 GFLOPs = 0.05 TFLOPs -> 10 per TFLOP
    assert efficiency_score(0.5, 50.0, baseline_dice=0.6, gate=0.8) == pytest.approx(10.0)


def test_score_is_zero_below_80_percent_of_baseline():
    assert efficiency_score(0.479, 10.0, baseline_dice=0.6) == 0.0  # 0.479 < 0.48
    assert efficiency_score(0.48, 10.0, baseline_dice=0.6) == pytest.approx(48.0)  # exactly at the gate counts


def test_score_rejects_non_positive_flops():
    with pytest.raises(ValueError, match="gflops"):
        efficiency_score(0.5, 0.0, 0.5)


def test_latency_metrics_names_device_and_counts_runs():
    model = torch.nn.Conv2d(3, 19, 1)
    cfg = EfficiencyConfig(latency_size=[16, 32], latency_runs=4, latency_warmup=1, threads=1)
    out = latency_metrics(model, cfg)
    assert out["latency_runs_cpu"] == 4 and out["cpu_threads"] == 1
    assert out["fps_cpu"] == pytest.approx(1000.0 / out["latency_ms_cpu"], rel=0.05)
    assert ("fps_cuda_bf16" in out) == torch.cuda.is_available()
