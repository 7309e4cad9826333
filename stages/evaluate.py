"""DVC stage `evaluate@<benchmark>`: every benchmark's numbers for one model, as one flat metrics JSON + plots.

Competition Dice, mIoU and per-class scores on the evaluation split; FLOPs, parameters, latency and the
efficiency score; Dice under fog, rain and corruptions; OOD detection and the competition OOD score.
"""

from pathlib import Path

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, EfficiencyConfig, EvalConfig, OODConfig, load_params, section
from cityseg.dataset import evaluation_split
from cityseg.efficiency import efficiency_metrics
from cityseg.evaluate import Predictor, select_and_score, summary_line
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
    p = Predictor.from_checkpoint(args.checkpoint)
    # Tuned values are chosen off the reported split (m["selection"]); p then carries the chosen min_class_area.
    m, p = select_and_score(p, args.prepared, split, cfg, plots, title=f"{args.benchmark} on {split}")
    m["efficiency"] = efficiency_metrics(p, m["dice"], m["gflops"], args.checkpoint, args.baseline, args.prepared,
                                         split, bs, section(params, "efficiency", EfficiencyConfig),
                                         selection_split=m["selection"]["split"], candidates=cfg.min_class_area)
    rob = m["robustness"] = evaluate_robustness(p, args.weather, bs)
    severity_plot(rob, plots / "robustness.png", title=args.benchmark, heldout=read_testbed(args.weather)["heldout"])
    qualitative_grid(p, args.weather, plots / "robustness_examples.png")
    ood = m["ood"] = ood_benchmark(p, args.prepared, args.ood, split, section(params, "ood", OODConfig), bs, plots,
                                   args.ood_model, args.benchmark, calibration_split=m["selection"]["split"])
    m["selection"].update(ood_method=ood["method"], ood_threshold=ood["threshold"])
    write_json(args.metrics, m)
    print(summary_line(args.benchmark, split, m))

if __name__ == "__main__":
    run_stage(main)
