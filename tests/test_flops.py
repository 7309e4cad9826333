"""FLOP counting (resize inside forward counted), ptflops cross-check, latency structure."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cityseg.flops import count_flops, count_macs_ptflops, count_params, measure_latency


class HalfThenConv(nn.Module):
    """Downscale by 0.5 inside forward, then a 3x3 conv 3 -> 8 without bias."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))


def conv_flops(c_in, c_out, k, h, w):
    return 2 * c_in * c_out * k * k * h * w  # 2 x MACs, bias not counted


def test_resize_inside_forward_is_counted():
    model = HalfThenConv()
    # At 64x96 the conv sees 32x48 pixels.
    assert count_flops(model, size=(64, 96)) == conv_flops(3, 8, 3, 32, 48)
    assert count_flops(model, size=(1024, 2048)) == conv_flops(3, 8, 3, 512, 1024)


def test_count_flops_leaves_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, size=(32, 32))
    assert model.training
    for k, v in model.state_dict().items():
        assert v.device.type == "cpu"
        assert torch.equal(v, before[k]), k  # BN running stats not updated either


class DataDependent(nn.Module):
    """``.item()`` needs real data, so the meta device cannot run this model."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)

    def forward(self, x):
        if x.abs().sum().item() >= 0:
            return self.conv(x)
        return x


def test_meta_failure_falls_back_to_cpu_with_warning():
    with pytest.warns(RuntimeWarning, match="meta device"):
        flops = count_flops(DataDependent(), size=(8, 10))
    assert flops == conv_flops(3, 2, 1, 8, 10)


def test_ptflops_macs_match_half_flops():
    plain = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.Conv2d(16, 8, 3, stride=2, bias=False))
    size = (64, 64)
    assert count_macs_ptflops(plain, size) * 2 == count_flops(plain, size)
    # With BN/ReLU/bias ptflops adds their (small) cost: within a few percent.
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 19, 3, padding=1)
    )
    macs, flops = count_macs_ptflops(net, size), count_flops(net, size)
    assert macs * 2 == pytest.approx(flops, rel=0.05)
    assert macs * 2 > flops


def test_ptflops_real_forward_agrees_with_meta():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1, bias=False))
    assert count_macs_ptflops(net, (32, 48), meta=False) == count_macs_ptflops(net, (32, 48), meta=True)
    # With functional counting on (meta=False) ptflops counts an nn.ReLU twice (module hook and
    # patched F.relu), so the two modes differ by exactly the activation's size there.
    relu = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU())
    extra = count_macs_ptflops(relu, (32, 48), meta=False) - count_macs_ptflops(relu, (32, 48))
    assert extra == 8 * 32 * 48


def test_count_params():
    net = nn.Conv2d(3, 8, 3)  # 8*3*3*3 weights + 8 biases
    assert count_params(net) == 224


def test_measure_latency_structure():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).train()
    res = measure_latency(model, size=(32, 48), warmup=1, runs=4, threads=1)
    for key in ("median_ms", "mean_ms", "p90_ms", "fps", "runs", "threads", "device", "dtype"):
        assert key in res
    assert res["runs"] == 4 and res["threads"] == 1
    assert res["device"] == "cpu" and res["dtype"] == "float32"
    assert res["median_ms"] > 0 and res["p90_ms"] >= res["median_ms"]
    assert res["fps"] == pytest.approx(1000.0 / res["median_ms"])
    assert model.training  # the caller's model is not switched to eval
    bf16 = measure_latency(model, size=(16, 16), warmup=0, runs=2, dtype=torch.bfloat16, channels_last=True)
    assert bf16["dtype"] == "bfloat16" and bf16["runs"] == 2
    with pytest.raises(ValueError, match="runs"):
        measure_latency(model, size=(16, 16), runs=0)
