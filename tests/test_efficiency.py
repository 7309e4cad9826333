"""The efficiency benchmark: Dice per TFLOP behind the 80%-of-baseline gate, the metrics block, latency."""

import time

import pytest
import torch
from test_evaluate import CPU, stub_arch, stub_checkpoint, write_prepared  # noqa: F401 (stub_arch is a fixture)

from cityseg.config import EfficiencyConfig
from cityseg.efficiency import efficiency_metrics, efficiency_score, latency_metrics
from cityseg.inference import Predictor


def test_score_is_dice_per_tflop_above_the_gate():
    # Dice 0.5 at 50 GFLOPs = 0.05 TFLOPs -> 10 per TFLOP; baseline 0.6 -> the gate is 0.48.
    assert efficiency_score(0.5, 50.0, baseline_dice=0.6, gate=0.8) == pytest.approx(10.0)
    # Dice 0.3 at 2563.6 GFLOPs (the course U-Net at 1024x2048): 0.3 / 2.5636 = 0.117023.
    assert efficiency_score(0.3, 2563.6, baseline_dice=0.3, gate=0.8) == pytest.approx(0.117023, abs=1e-6)


def test_score_gate_at_exactly_80_percent_of_baseline():
    # 0.8 x 0.5 = 0.4 exactly in binary floating point (a halving): Dice 0.4 sits on the gate and counts.
    assert efficiency_score(0.4, 8.0, baseline_dice=0.5, gate=0.8) == pytest.approx(50.0)  # 0.4 / 0.008
    assert efficiency_score(0.3999, 8.0, baseline_dice=0.5, gate=0.8) == 0.0
    assert efficiency_score(0.3999, 8.0, baseline_dice=0.5, gate=0.7) == pytest.approx(49.9875)  # another gate
    with pytest.raises(ValueError, match="gflops"):
        efficiency_score(0.5, 0.0, 0.5, 0.8)


def test_efficiency_metrics_recomputes_the_baseline_dice(tmp_path, stub_arch):  # noqa: F811
    prepared = write_prepared(tmp_path / "prepared")
    model_ckpt = stub_checkpoint(tmp_path / "model.pt", 0.2)  # Dice 0.936508 (tests/test_evaluate.py)
    baseline = stub_checkpoint(tmp_path / "baseline.pt", 0.0)  # the same net without small-class removal: 0.759259
    cfg = EfficiencyConfig(latency_size=[8, 16], latency_runs=2, latency_warmup=0, threads=1, gate=0.8)
    predictor = Predictor.from_checkpoint(model_ckpt, CPU)
    eff = efficiency_metrics(predictor, 0.936508, 10.0, model_ckpt, baseline, prepared, "test", 2, cfg)
    assert eff["baseline_dice"] == 0.759259  # from the baseline checkpoint, with its own min_class_area
    assert eff["dice_ratio_to_baseline"] == 1.2334  # 0.936508 / 0.759259 = 1.23345, to 4 digits
    assert eff["score"] == 93.6508  # 0.936508 / 0.01 TFLOPs
    assert eff["latency_runs_cpu"] == 2 and eff["cpu_threads"] == 1
    # The baseline itself: its own Dice is the reference (ratio 1), nothing is evaluated again.
    same = efficiency_metrics(predictor, 0.5, 10.0, model_ckpt, tmp_path / "model.pt", tmp_path / "nowhere", "test", 2, cfg)
    assert (same["baseline_dice"], same["dice_ratio_to_baseline"], same["score"]) == (0.5, 1.0, 50.0)


class Sleeps(torch.nn.Module):
    """A net whose forward takes at least ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 19, 1)
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return self.conv(x)


def test_latency_metrics_time_the_forward_and_respect_the_budget():
    cfg = EfficiencyConfig(latency_size=[16, 32], latency_runs=3, latency_warmup=0, threads=1, latency_budget_s=0)
    out = latency_metrics(Sleeps(0.03), cfg)
    # A 30 ms forward: 30 ms (plus scheduling slack on a busy machine), about 33 frames per second.
    assert 30.0 <= out["latency_ms_cpu"] < 60.0 and 16.0 < out["fps_cpu"] <= 33.4
    assert out["latency_runs_cpu"] == 3 and out["cpu_threads"] == 1
    assert ("fps_cuda_bf16" in out) == torch.cuda.is_available()
    # A 50 ms budget stops after the 2 minimum runs of 30 ms each, not after all 50.
    budget = EfficiencyConfig(latency_size=[16, 32], latency_runs=50, latency_warmup=0, threads=1, latency_budget_s=0.05)
    assert latency_metrics(Sleeps(0.03), budget)["latency_runs_cpu"] == 2
