"""FLOP counting at the server's input size (the course U-Net's reported figure pinned), resize
inside forward counted, ptflops cross-check, latency statistics on a controlled clock."""

import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cityseg import evaluate
from cityseg import flops as flops_module
from cityseg.config import ModelConfig
from cityseg.flops import count_flops, count_macs_ptflops, count_params, measure_latency
from cityseg.models import build_model

SERVER_PIXELS = 1024 * 2048  # the efficiency server's single 1x3x1024x2048 input


class HalfThenConv(nn.Module):
    """Downscale by 0.5 inside forward, then a 3x3 conv 3 -> 8 without bias."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))


def conv_flops(c_in, c_out, k, h, w):
    return 2 * c_in * c_out * k * k * h * w  # 2 x MACs, bias not counted


def _course_unet_conv_flops() -> int:
    """FlopCounterMode's count for the course U-Net at 1x3x1024x2048, worked out from its layout.

    (pixel share of the full frame, in, out) for every 3x3 conv: encoder 64, 128, 256, 512, 512 at
    1/1 .. 1/16 of the pixels, decoder DoubleConv(in, out, mid = in / 2) back up; then the 1x1 head.
    """
    convs = [(1, 3, 64), (1, 64, 64), (4, 64, 128), (4, 128, 128), (16, 128, 256), (16, 256, 256),
             (64, 256, 512), (64, 512, 512), (256, 512, 512), (256, 512, 512),  # encoder
             (64, 1024, 512), (64, 512, 256), (16, 512, 256), (16, 256, 128),  # up1, up2
             (4, 256, 128), (4, 128, 64), (1, 128, 64), (1, 64, 64)]  # up3, up4
    return sum(conv_flops(c_in, c_out, 3, 1, SERVER_PIXELS // d) for d, c_in, c_out in convs) + \
        conv_flops(64, 19, 1, 1, SERVER_PIXELS)


@pytest.fixture(scope="module")
def course_unet() -> nn.Module:
    return build_model(ModelConfig(arch="unet", base_channels=64, width=1.0))


def test_default_size_is_the_servers_full_frame():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv) == 2 * 3 * 9 * 8 * 1024 * 2048  # not 512x1024, not a batch of 2
    assert evaluate.FLOP_SIZE == (1024, 2048)


def test_course_unet_reports_the_course_figures(course_unet):
    expected = _course_unet_conv_flops()
    assert expected / 1e9 == pytest.approx(2563.6, abs=0.1)  # the hand count is the course's figure
    assert count_flops(course_unet) == expected  # default size
    assert evaluate.complexity(course_unet)["gflops"] == pytest.approx(2563.6, abs=0.1)
    assert count_params(course_unet) / 1e6 == pytest.approx(17.26, abs=0.005)


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


class FakeClock:
    """``time.perf_counter`` stand-in: each timed run (a start and an end reading) lasts the next duration."""

    def __init__(self, durations_ms):
        self.readings = []
        for i, d in enumerate(durations_ms):
            self.readings += [10.0 * i, 10.0 * i + d / 1000.0]

    def perf_counter(self) -> float:
        return self.readings.pop(0)

    def install(self, monkeypatch) -> None:  # only cityseg.flops sees the fake clock
        monkeypatch.setattr(flops_module, "time", types.SimpleNamespace(perf_counter=self.perf_counter))


def test_measure_latency_statistics_on_a_known_clock(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).train()
    FakeClock([10, 20, 30, 100]).install(monkeypatch)
    res = measure_latency(model, size=(32, 48), warmup=1, runs=4, threads=1)
    # durations 10, 20, 30, 100 ms: median 25, mean 40, p90 = 30 + 0.7 * (100 - 30) (linear), 1000 / 25 fps
    assert res["median_ms"] == pytest.approx(25.0) and res["mean_ms"] == pytest.approx(40.0)
    assert res["p90_ms"] == pytest.approx(79.0) and res["fps"] == pytest.approx(40.0)
    assert res["runs"] == 4 and res["threads"] == 1 and res["size"] == [32, 48]
    assert res["device"] == "cpu" and res["dtype"] == "float32" and res["channels_last"] is False
    assert model.training  # the caller's model is not switched to eval


def test_measure_latency_budget_stops_after_min_runs(monkeypatch):
    FakeClock([100, 10, 10, 10]).install(monkeypatch)
    res = measure_latency(nn.Conv2d(3, 2, 1), size=(8, 8), warmup=0, runs=4, budget_s=0.05, min_runs=3)
    assert res["runs"] == 3  # over the 50 ms budget after the first run, but at least min_runs = 3 are timed
    assert res["median_ms"] == pytest.approx(10.0)


def test_measure_latency_real_clock_and_arguments():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    bf16 = measure_latency(model, size=(16, 16), warmup=0, runs=2, dtype=torch.bfloat16, channels_last=True)
    assert bf16["dtype"] == "bfloat16" and bf16["runs"] == 2 and bf16["channels_last"] is True
    with pytest.raises(ValueError, match="runs"):
        measure_latency(model, size=(16, 16), runs=0)
    with pytest.raises(ValueError, match="dtype"):
        measure_latency(model, size=(16, 16), dtype=torch.int8)
