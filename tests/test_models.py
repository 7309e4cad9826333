"""Course U-Net figures, Fast-SCNN budget, model factory, weights files and checkpoints."""

import dataclasses

import huggingface_hub.constants
import pytest
import torch
import torchvision

from cityseg.config import ConfigError, ModelConfig
from cityseg.fastscnn import FastSCNN
from cityseg.flops import count_flops, count_params
from cityseg.io import DataError
from cityseg.models import build_model, load_checkpoint, load_weights, pad_multiple, save_checkpoint
from cityseg.unet import UNet

FULL = (1024, 2048)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _double_conv_params(c_in: int, c_out: int, mid: int | None = None) -> int:
    """Two bias-free 3x3 convs, each followed by BatchNorm (weight and bias; running stats are buffers)."""
    mid = mid or c_out
    return 9 * c_in * mid + 2 * mid + 9 * mid * c_out + 2 * c_out


def test_unet_matches_course_baseline_figures():
    model = UNet()
    # The course layout (competition.md), counted by hand: encoder 64-128-256-512-512, decoder
    # DoubleConv(in, out, mid = in / 2), a 1x1 head with bias.
    layout = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512),
              (1024, 256, 512), (512, 128, 256), (256, 64, 128), (128, 64, 64)]
    expected = sum(_double_conv_params(*stage) for stage in layout) + 64 * 19 + 19
    assert count_params(model) == expected
    assert expected / 1e6 == pytest.approx(17.26, abs=0.005)
    assert count_params(build_model(ModelConfig(arch="unet", base_channels=64, width=1.0))) == expected
    assert count_flops(model, FULL) / 1e9 == pytest.approx(2563.6, abs=0.1)
    assert count_flops(model, (256, 256)) / 1e9 == pytest.approx(80.1, abs=0.1)
    # Same submodule names as the course's model.py, so its state_dicts load unchanged.
    keys = model.state_dict()
    assert keys["inc.double_conv.0.weight"].shape == (64, 3, 3, 3)
    assert keys["down4.maxpool_conv.1.double_conv.0.weight"].shape == (512, 512, 3, 3)
    assert keys["up1.conv.double_conv.0.weight"].shape == (512, 1024, 3, 3)  # mid = in / 2
    assert keys["outc.conv.weight"].shape == (19, 64, 1, 1)


def test_unet_width_scales_cost_quadratically():
    full, half = UNet(), UNet(width=0.5)
    assert count_params(half) / count_params(full) == pytest.approx(0.25, abs=0.01)
    assert count_flops(half, (256, 256)) / count_flops(full, (256, 256)) == pytest.approx(0.25, abs=0.01)


def test_unet_base_channels_and_width_compose():
    small = UNet(base_channels=8)
    # base 8 is the course net at width 1/8, stage for stage (8, 16, 32, 64, 64 channels)
    assert {k: v.shape for k, v in small.state_dict().items()} == \
        {k: v.shape for k, v in UNet(width=0.125).state_dict().items()}
    assert small.state_dict()["down4.maxpool_conv.1.double_conv.0.weight"].shape == (64, 64, 3, 3)
    # the ablation knob halves the channels of whatever base is set: a quarter of the FLOPs
    half = UNet(base_channels=8, width=0.5)
    assert count_flops(half, (256, 256)) / count_flops(small, (256, 256)) == pytest.approx(0.25, abs=0.02)
    model = build_model(ModelConfig(arch="unet", base_channels=8, width=0.5))
    assert model.inc.double_conv[0].out_channels == 4
    with pytest.raises(ConfigError, match="model.base_channels"):
        ModelConfig(base_channels=0)


@pytest.mark.parametrize("size", [(32, 48), (37, 51)])
def test_unet_forward_size_and_values(size):
    model = UNet(width=0.125).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = model(x)
        again = model(x)
        alone = model(x[1:])
    assert out.shape == (2, 19, *size)  # odd sizes too: the decoder pads to the skip's size
    torch.testing.assert_close(again, out, rtol=0, atol=0)  # eval mode is deterministic
    torch.testing.assert_close(alone[0], out[1], rtol=1e-4, atol=1e-5)  # no batch statistics in eval
    assert (out[0] - out[1]).abs().mean() > 1e-3  # different images, different logits
    assert out[0].std(dim=(1, 2)).min() > 0  # every class map varies over the image


def test_fastscnn_budget_and_input_scale():
    assert count_params(FastSCNN()) / 1e6 == pytest.approx(1.11, abs=0.05)  # the paper's 1.11 M
    # width 0.5 halves the channels: about a quarter of the parameters (the 19-class head is fixed)
    assert count_params(FastSCNN(width=0.5)) / count_params(FastSCNN()) == pytest.approx(0.25, abs=0.02)
    full = count_flops(FastSCNN(), FULL)
    assert full / 1e9 <= 51
    half = count_flops(FastSCNN(input_scale=0.5), FULL)
    # Running the net at half size inside forward cuts the count ~4x.
    assert half / full == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("scale, size", [(1.0, (45, 77)), (0.5, (64, 99))])
def test_fastscnn_output_matches_input_size(scale, size):
    model = FastSCNN(width=0.5, input_scale=scale).train()
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 19, *size)
    out.mean().backward()  # trainable end to end
    assert model.downsample[0][0].weight.grad is not None


@pytest.mark.parametrize(
    "cfg, expected_type, multiple",
    [
        (ModelConfig(arch="unet", base_channels=64, width=0.125), UNet, 16),
        (ModelConfig(arch="fastscnn", width=0.5, extra={"input_scale": 0.5}), FastSCNN, 64),
        (ModelConfig(arch="DeepLabV3Plus", encoder_name="resnet18"), None, 16),
    ],
)
def test_build_model(cfg, expected_type, multiple):
    model = build_model(cfg).eval()
    if expected_type is not None:
        assert isinstance(model, expected_type)
    else:
        assert type(model).__name__ == "DeepLabV3Plus"
    assert pad_multiple(model) == multiple
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model(x), out, rtol=0, atol=0)
    assert out.shape == (2, 19, 64, 128)
    assert not torch.equal(out[0], out[1])  # the logits depend on the input


def test_unknown_arch_and_bad_extra():
    with pytest.raises(ConfigError, match=r"model\.arch.*'nosuchnet'.*fastscnn.*deeplabv3plus"):
        build_model(ModelConfig(arch="nosuchnet"))
    with pytest.raises(ConfigError, match=r"model\.extra.*bogus"):
        build_model(ModelConfig(arch="fastscnn", extra={"bogus": 1}))


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """Hugging Face hub offline with an empty cache: any download attempt fails at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


def test_pretrained_download_offline_gives_clear_error(offline_hub):
    cfg = ModelConfig(arch="DeepLabV3Plus", encoder_name="resnet18", encoder_weights="imagenet")
    with pytest.raises(RuntimeError, match=r"(?s)could not download.*imagenet.*resnet18.*weights_path"):
        build_model(cfg)


def test_weights_path_whole_model(tmp_path):
    source = UNet(width=0.125)
    path = tmp_path / "unet.pt"
    # A training checkpoint dict with a DataParallel prefix is accepted too.
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model(ModelConfig(arch="unet", base_channels=64, width=0.125, weights_path=str(path)))
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_weights_path_encoder_only(tmp_path):
    # The offline HPC case: a torchvision ResNet-18 file (with its fc layer) as encoder weights.
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = build_model(ModelConfig(arch="DeepLabV3Plus", encoder_name="resnet18", weights_path=str(path)))
    assert torch.equal(model.encoder.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.encoder.layer4[1].bn2.running_var, resnet.layer4[1].bn2.running_var)
    # A whole smp model with another head: its "encoder." part is used.
    other = build_model(ModelConfig(arch="FPN", encoder_name="resnet18", num_classes=5))
    torch.save({"state_dict": other.state_dict()}, path)
    model = build_model(ModelConfig(arch="DeepLabV3Plus", encoder_name="resnet18"))
    assert load_weights(model, path) == "encoder"
    assert torch.equal(model.encoder.layer1[0].conv1.weight, other.encoder.layer1[0].conv1.weight)


def test_bad_weights_files(tmp_path):
    junk = tmp_path / "junk.pt"
    torch.save({"foo.weight": torch.zeros(3), "bar.bias": torch.zeros(2)}, junk)
    with pytest.raises(DataError, match=r"junk\.pt.*UNet.*missing.*unexpected.*foo\.weight"):
        build_model(ModelConfig(arch="unet", base_channels=64, width=0.125, weights_path=str(junk)))
    with pytest.raises(DataError, match=r"junk\.pt.*neither.*encoder"):
        build_model(ModelConfig(arch="DeepLabV3Plus", weights_path=str(junk)))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"corrupt\.pt: cannot read"):
        build_model(ModelConfig(arch="unet", weights_path=str(corrupt)))
    with pytest.raises(DataError, match="not found"):
        build_model(ModelConfig(arch="unet", weights_path=str(tmp_path / "missing.pt")))


def test_checkpoint_round_trip(tmp_path):
    cfg = ModelConfig(arch="fastscnn", width=0.5, extra={"input_scale": 0.5})
    model = build_model(cfg)
    model(torch.randn(2, 3, 64, 64))  # one train-mode pass so BN running stats are non-trivial
    model.eval()
    path = tmp_path / "ckpt" / "best.pt"
    save_checkpoint(path, model, cfg, epoch=3, val_dice=torch.tensor(0.5), history=[1.0, 2.0])
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]  # no temp file left
    loaded, loaded_cfg, meta = load_checkpoint(path)
    assert loaded_cfg == cfg
    assert meta == {"epoch": 3, "val_dice": 0.5, "history": [1.0, 2.0]}
    assert not loaded.training
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_checkpoint_of_pretrained_smp_rebuilds_offline(tmp_path, offline_hub):
    # Trained from ImageNet weights: reloading must not try to download them again.
    cfg = ModelConfig(arch="DeepLabV3Plus", encoder_name="resnet18", encoder_weights="imagenet")
    model = build_model(dataclasses.replace(cfg, encoder_weights=None)).eval()
    save_checkpoint(tmp_path / "m.pt", model, cfg)
    loaded, loaded_cfg, meta = load_checkpoint(tmp_path / "m.pt")
    assert loaded_cfg.encoder_weights == "imagenet" and meta == {}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match=r"bad\.pt: cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(DataError, match="not a cityseg checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="plain types"):
        save_checkpoint(tmp_path / "x.pt", UNet(width=0.125), ModelConfig(), fn=print)


def test_our_names_match_exactly_so_smp_unet_stays_reachable():
    from cityseg.unet import UNet

    ours = build_model(ModelConfig(arch="unet", base_channels=64, width=0.125))
    smp_unet = build_model(ModelConfig(arch="Unet", encoder_name="resnet18", width=1.0))
    assert isinstance(ours, UNet) and not isinstance(smp_unet, UNet)
    assert type(smp_unet).__module__.startswith("segmentation_models_pytorch")
