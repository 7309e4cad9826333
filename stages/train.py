"""DVC stage `train@<benchmark>`: train one benchmark's model on the prepared dataset."""

import argparse
from pathlib import Path

from cityseg.cli import run_stage
from cityseg.config import benchmark_configs, load_params
from cityseg.train import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--benchmark", required=True, help="a key of 'benchmarks' in params.yaml")
    ap.add_argument("--prepared", required=True, help="prepared dataset folder")
    ap.add_argument("--out", required=True, help="checkpoint folder (best.pt, summary.json)")
    ap.add_argument("--live", required=True, help="DVCLive folder (per-epoch metrics and overlays)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    model_cfg, train_cfg = benchmark_configs(load_params(args.params), args.benchmark)
    # The resume checkpoint lives outside the stage's outputs: DVC deletes outputs before a
    # re-run, and an interrupted run must find its last epoch again.
    resume = Path(".cityseg/resume") / args.benchmark
    s = fit(model_cfg, train_cfg, args.prepared, args.out, args.live, resume)
    print(f"train@{args.benchmark}: best epoch {s['best_epoch']}/{s['epochs']}, val Dice {s['val_dice']:.4f}, "
          f"val mIoU {s['val_miou']:.4f}, {s['train_time_s']:.0f} s ({s['train_images_per_s']:.1f} images/s)")


if __name__ == "__main__":
    run_stage(main)
