"""DVC stage `evaluate@<benchmark>`: every benchmark's numbers for one model, as one flat metrics JSON + plots.

Competition Dice, mIoU and per-class scores on the evaluation split; FLOPs, parameters, latency and the
efficiency score; Dice under fog, rain and corruptions; OOD detection and the competition OOD score.
Every tuned value (small-class removal, the OOD method and threshold) is chosen on the selection split and
the validation OOD sets, never on the reported split, and recorded under ``selection``.
"""

from pathlib import Path

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, EfficiencyConfig, EvalConfig, OODConfig, load_params, section
from cityseg.dataset import evaluation_split
from cityseg.efficiency import efficiency_metrics
from cityseg.evaluate import Predictor, select_and_score
from cityseg.io import write_json
from cityseg.oodeval import ood_benchmark
from cityseg.robustness import evaluate_robustness, qualitative_grid, read_testbed, severity_plot

PATHS = {"benchmark": "a key of 'benchmarks' in params.yaml", "checkpoint": "the model's checkpoint", "baseline":
         "the baseline's checkpoint (efficiency gate)", "prepared": "prepared dataset", "weather": "robustness test bed",
         "ood": "OOD image sets", "ood-model": "where to save the (logits, include) OOD model state_dict",
         "metrics": "metrics JSON to write", "plots": "folder for plots"}


def main() -> None:
    args = stage_args(__doc__, PATHS)
    params = load_params(args.params)
    cfg, data = section(params, "eval", EvalConfig), section(params, "data", DataConfig)
    split, plots, bs = evaluation_split(cfg.split, data.source), Path(args.plots), cfg.batch_size
    p = Predictor.from_checkpoint(args.checkpoint)  # carries the input size and the best epoch
    # p now carries the chosen min_class_area: every score below uses it, as the package does.
    m, p = select_and_score(p, args.prepared, split, cfg, plots, title=f"{args.benchmark} on {split}")
    sel = m["selection"]
    m["efficiency"] = efficiency_metrics(p, m["dice"], m["gflops"], args.checkpoint, args.baseline, args.prepared,
                                         split, bs, section(params, "efficiency", EfficiencyConfig),
                                         selection_split=sel["split"], candidates=cfg.min_class_area)
    rob = m["robustness"] = evaluate_robustness(p, args.weather, bs)
    severity_plot(rob, plots / "robustness.png", title=args.benchmark, heldout=read_testbed(args.weather)["heldout"])
    qualitative_grid(p, args.weather, plots / "robustness_examples.png")
    ood = m["ood"] = ood_benchmark(p, args.prepared, args.ood, split, section(params, "ood", OODConfig), bs, plots,
                                   args.ood_model, args.benchmark, calibration_split=sel["split"])
    sel.update(ood_method=ood["method"], ood_threshold=ood["threshold"])
    write_json(args.metrics, m)
    print(f"evaluate@{args.benchmark} on {split}: Dice {m['dice']:.4f}, mIoU {m['miou']:.4f}, {m['gflops']:.1f} GFLOPs, "
          f"{m['params_m']:.2f} M params, efficiency {m['efficiency']['score']:.3f}, corrupted Dice "
          f"{rob['dice_corrupted_mean']:.4f}, OOD score {ood['score']:.4f} (accept-all {ood['score_accept_all']:.4f}); "
          f"chosen on {sel['split']}: min_class_area {sel['min_class_area']:g}, OOD method {sel['ood_method']}")


if __name__ == "__main__":
    run_stage(main)
