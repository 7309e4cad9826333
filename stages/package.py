"""DVC stage `package@<benchmark>`: the competition submission of one benchmark, self-tested.

Writes model.py, model.pt, predict.py, Dockerfile, README.md and the 2024-25 zip (cityseg.package), then runs
them as the course servers do, without cityseg, and fails unless they reproduce the pipeline's masks, Dice
and FLOPs (cityseg.selftest, results in selftest.json).
"""

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, EvalConfig, PackageConfig, load_params, section
from cityseg.dataset import evaluation_split
from cityseg.io import atomic_dir, read_json
from cityseg.package import read_trained, selected_min_area, write_package
from cityseg.selftest import self_test

PATHS = {"benchmark": "a key of 'benchmarks' in params.yaml", "checkpoint": "the model's checkpoint",
         "ood-model": "the (logits, include) OOD model evaluate saved", "prepared": "prepared dataset",
         "ood": "OOD image sets (self-test images for a refusing submission)",
         "metrics": "the benchmark's metrics JSON (Dice and GFLOPs to reproduce)", "out": "submission folder to write"}


def main() -> None:
    args = stage_args(__doc__, PATHS)
    params = load_params(args.params)
    cfg, data = section(params, "package", PackageConfig), section(params, "data", DataConfig)
    split = evaluation_split(section(params, "eval", EvalConfig).split, data.source)
    metrics = read_json(args.metrics)
    # The small-class threshold evaluation chose on its selection split: the one the metrics' Dice used.
    trained = read_trained(args.checkpoint, args.ood_model if args.benchmark in cfg.refusal else None,
                           selected_min_area(metrics, args.metrics))
    with atomic_dir(args.out) as out:
        write_package(out, args.benchmark, trained, cfg.base_image)
        r = self_test(out, trained, args.prepared, split, metrics, cfg, args.ood)
    print(f"package@{args.benchmark}: {args.out} self-tested on {r['images']} images ({r['eval_images']} of {split}): "
          f"masks identical, Dice {r['dice_from_masks']:.6f}, {r['gflops_model']:.3f} GFLOPs, "
          f"{r['images_per_s']:.1f} images/s" + (f", {r['refused']} refused" if "refused" in r else ""))


if __name__ == "__main__":
    run_stage(main)
