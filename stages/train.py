"""DVC stage `train@<benchmark>`: train one benchmark's model on the prepared dataset."""

from cityseg.cli import run_stage, stage_args
from cityseg.config import benchmark_configs, load_params
from cityseg.train import fit

PATHS = {"benchmark": "a key of 'benchmarks' in params.yaml", "prepared": "prepared dataset folder",
         "out": "checkpoint folder (best.pt, summary.json)", "live": "DVCLive folder (per-epoch metrics, overlays)",
         # Outside the stage's outputs: DVC deletes outputs before a re-run, and an interrupted run
         # must find its last epoch again.
         "resume": "resume folder (last.pt and a copy of best.pt while training)"}


def main() -> None:
    args = stage_args(__doc__, PATHS)
    model_cfg, train_cfg = benchmark_configs(load_params(args.params), args.benchmark)
    s = fit(model_cfg, train_cfg, args.prepared, args.out, args.live, args.resume)
    print(f"train@{args.benchmark}: best epoch {s['best_epoch']}/{s['epochs']}, val Dice {s['val_dice']:.4f}, "
          f"val mIoU {s['val_miou']:.4f}, {s['train_time_s']:.0f} s ({s['train_images_per_s']:.1f} images/s)")


if __name__ == "__main__":
    run_stage(main)
