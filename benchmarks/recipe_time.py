"""Training hours per benchmark of a params profile on one GPU: an estimate from FLOPs, not a measurement.

For each benchmark of ``--params`` with ``--profile`` applied (to a temporary copy: params.yaml is not touched):
forward FLOPs of one image at the benchmark's ``train.size`` (``cityseg.flops.count_flops`` on the model
``build_model`` makes, on the meta device, so it costs no compute), a training step taken as 3x the forward,
times the images it sees (2975 Cityscapes train images a epoch, as the loader batches them, times epochs).
The rate is calibrated on anchors.md "Speed": the course U-Net (base 64) at 256x256 trains at 804 images/s
with bf16 autocast + channels_last on an H100 with the batch already on the device, 315 images/s in fp32.

    python benchmarks/recipe_time.py --profile profiles/cityscapes.yaml

Compute-bound: it leaves out data loading, validation each epoch and checkpoints, and assumes every net
reaches the U-Net's arithmetic rate. Nets of depthwise convolutions (Fast-SCNN) reach far less, and an A100
is slower than an H100 (not calibrated here): read the hours as a floor.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

from cityseg.batches import images_per_epoch
from cityseg.config import ModelConfig, benchmark_configs, distill_config, load_params, model_names
from cityseg.flops import count_flops
from cityseg.models import build_model
from cityseg.profile import apply_profile
from latency import markdown_table  # benchmarks/ is the script's folder, so it is on sys.path

CITYSCAPES_TRAIN = 2975
ANCHOR_SIZE = (256, 256)  # the anchor run: course U-Net, batch 64, H100
ANCHOR_RATES = {"bf16": 804.0, "fp32": 315.0}  # images/s (anchors.md "Speed")
TRAIN_OVER_FORWARD = 3  # forward + backward (~2x forward)


def describe(cfg: ModelConfig) -> str:
    if cfg.arch == "unet":
        return f"U-Net base {cfg.base_channels}"
    if cfg.arch == "fastscnn":
        return f"Fast-SCNN, input_scale {cfg.extra.get('input_scale', 1.0)}"
    return f"{cfg.arch} {cfg.encoder_name}"


def anchor_flops_per_s() -> dict[str, float]:
    """Training FLOP/s of the anchor runs, counted with the project's counter (80.1 GFLOPs at 256x256)."""
    unet = build_model(ModelConfig(arch="unet", base_channels=64))
    step = TRAIN_OVER_FORWARD * count_flops(unet, ANCHOR_SIZE)
    return {name: rate * step for name, rate in ANCHOR_RATES.items()}


def forward_gflops(model_cfg: ModelConfig, size: list) -> float:
    model = build_model(dataclasses.replace(model_cfg, weights_path=None, encoder_weights=None))
    return count_flops(model, tuple(size)) / 1e9


def rows(params: dict) -> list[list]:
    rates = anchor_flops_per_s()
    out = []
    for name in model_names(params):
        model_cfg, train = benchmark_configs(params, name)
        gflops = forward_gflops(model_cfg, train.size)
        # A student's step also runs its teacher forward on the same batch.
        teacher = (forward_gflops(benchmark_configs(params, distill_config(params, name).teacher)[0], train.size)
                   if name in (params.get("students") or {}) else 0.0)
        images = images_per_epoch(CITYSCAPES_TRAIN, train.batch_size) * train.epochs
        hours = {k: images * (TRAIN_OVER_FORWARD * gflops + teacher) * 1e9 / r / 3600 for k, r in rates.items()}
        out.append([name, describe(model_cfg), "x".join(map(str, train.size)), str(train.epochs), f"{images:,}",
                    f"{gflops:.1f}", f"{hours['bf16']:.2f}", f"{hours['fp32']:.2f}"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="profiles/cityscapes.yaml")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        params_path = Path(tmp) / "params.yaml"
        shutil.copyfile(args.params, params_path)
        apply_profile(params_path, args.profile)
        params = load_params(params_path)
    header = ["benchmark", "model", "input", "epochs", "images seen", "GFLOPs/image (fwd)",
              "hours H100 bf16", "hours H100 fp32"]
    print(markdown_table(header, rows(params), right=5))
    print(f"\nEstimated from FLOPs, not measured: training = {TRAIN_OVER_FORWARD}x the forward FLOPs at the training "
          f"size, at the course U-Net's H100 rate ({ANCHOR_RATES['bf16']:.0f} images/s bf16, {ANCHOR_RATES['fp32']:.0f} "
          "fp32, anchors.md). Compute-bound: no data loading, validation or checkpoints; a floor, not a forecast.")


if __name__ == "__main__":
    main()
