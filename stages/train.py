"""DVC stages `train@<benchmark>` and `distill@<student>` (``--teacher``, cityseg.distill): train one model.

SIGUSR1/SIGTERM stop it after the current step with its resume state saved: exit status 75 (EX_TEMPFAIL), and
the same command run again continues (cluster/README: requeue on 75). On N GPUs run the same arguments with
``torchrun --nproc_per_node=N stages/train.py ...`` (PyTorch DDP; train.batch_size stays the global batch).
"""

import sys

from cityseg.cli import run_stage, stage_args
from cityseg.config import load_params
from cityseg.distill import model_configs
from cityseg.distributed import is_main
from cityseg.jobs import EXIT_PREEMPTED, resolve_resume_dir
from cityseg.train import fit

PATHS = {"benchmark": "a key of 'benchmarks' or 'students' in params.yaml", "prepared": "prepared dataset folder",
         "out": "checkpoint folder (best.pt, summary.json)", "live": "DVCLive folder (per-epoch metrics, overlays)",
         # Outside the stage's outputs (DVC deletes outputs before a re-run) and, when relative, under the main
         # project (or $CITYSEG_RESUME_ROOT): temporary experiment copies are deleted after a failed run.
         "resume": "resume folder (last.pt and a copy of best.pt while training)"}
OPTIONAL = {"teacher": "the teacher's checkpoint (students only: models/<students.<name>.teacher>/best.pt)"}


def main() -> None:
    args = stage_args(__doc__, PATHS, OPTIONAL)
    params = load_params(args.params)
    model_cfg, train_cfg, teacher = model_configs(params, args.benchmark, args.teacher)
    s = fit(model_cfg, train_cfg, args.prepared, args.out, args.live, resolve_resume_dir(args.resume),
            run_name=args.benchmark, teacher=teacher)
    if not is_main():  # under torchrun: rank 0 reports, for all
        sys.exit(EXIT_PREEMPTED if s["interrupted"] else 0)
    stage = f"{'distill' if teacher else 'train'}@{args.benchmark}"
    if s["interrupted"]:
        print(f"{stage}: stopped by {s['reason']} after epoch {s['epochs_done']} + {s['steps']} step(s); "
              f"exit {EXIT_PREEMPTED}: run again to continue", file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)
    split = s["val_split"]  # val, or holdout (data.holdout_cities)
    print(f"{stage}: best epoch {s['best_epoch']}/{s['epochs']}, {split} Dice {s['val_dice']:.4f}, "
          f"{split} mIoU {s['val_miou']:.4f}, {s['train_time_s']:.0f} s ({s['train_images_per_s']:.1f} images/s)")


if __name__ == "__main__":
    run_stage(main)
