"""DVC stage `evaluate@<benchmark>`: every benchmark's numbers for one model.

Competition Dice, mIoU and per-class scores on the evaluation split; FLOPs, parameters, latency and
the efficiency score; Dice under fog, rain and corruptions; OOD detection and the competition OOD
score. Writes one flat metrics JSON and the plots.
"""

import argparse
import os
from pathlib import Path

import torch

from cityseg.cli import run_stage
from cityseg.config import DataConfig, EfficiencyConfig, EvalConfig, OODConfig, load_params, section
from cityseg.efficiency import efficiency_score, latency_metrics
from cityseg.dataset import evaluation_split
from cityseg.evaluate import complexity, evaluate_model
from cityseg.io import write_json
from cityseg.models import load_checkpoint
from cityseg.oodeval import evaluate_ood, ood_model_from, roc_plot, save_ood_model, score_histogram, write_scores_csv
from cityseg.plots import confusion_plot, per_class_plot
from cityseg.robustness import evaluate_robustness, qualitative_grid, read_testbed, severity_plot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--benchmark", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--baseline", required=True, help="the baseline's checkpoint (reference Dice of the efficiency gate)")
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--weather", required=True, help="robustness test bed (weather stage)")
    ap.add_argument("--ood", required=True, help="OOD image sets (oodsets stage)")
    ap.add_argument("--ood-model", required=True, help="where to save the (logits, include) OOD model state_dict")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    ap.add_argument("--plots", required=True, help="folder for plots")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = load_params(args.params)
    cfg, data = section(params, "eval", EvalConfig), section(params, "data", DataConfig)
    eff, oc = section(params, "efficiency", EfficiencyConfig), section(params, "ood", OODConfig)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _, meta = load_checkpoint(args.checkpoint, device)
    size = tuple(meta["train"]["size"])
    min_area = meta["train"].get("min_class_area", 0.0)  # the predictor's post-processing, as validated
    split = evaluation_split(cfg.split, data.source)
    plots = Path(args.plots)
    name = f"{args.benchmark} on {split}"

    metrics, confusion = evaluate_model(model, args.prepared, split, size, cfg.batch_size, device, min_area=min_area)
    metrics.update(complexity(model))
    per_class_plot(metrics, plots / "per_class.png", plots / "per_class.csv", title=name)
    confusion_plot(confusion, plots / "confusion.png", title=name)

    # Efficiency: the gate compares with the baseline's Dice on the same split. Recomputed from the
    # baseline checkpoint, since evaluate@baseline cannot depend on its own metrics file.
    if os.path.samefile(args.checkpoint, args.baseline):
        baseline_dice = metrics["dice"]
    else:
        base_model, _, base_meta = load_checkpoint(args.baseline, device)
        baseline_dice = evaluate_model(base_model, args.prepared, split, tuple(base_meta["train"]["size"]),
                                       cfg.batch_size, device, progress=False,
                                       min_area=base_meta["train"].get("min_class_area", 0.0))[0]["dice"]
    metrics["efficiency"] = {
        "score": round(efficiency_score(metrics["dice"], metrics["gflops"], baseline_dice, eff.gate), 4),
        "baseline_dice": baseline_dice,
        "dice_ratio_to_baseline": round(metrics["dice"] / baseline_dice, 4) if baseline_dice else None,
        **latency_metrics(model, eff),
    }

    rob = evaluate_robustness(model, size, args.weather, device, cfg.batch_size, min_area=min_area)
    metrics["robustness"] = rob
    severity_plot(rob, plots / "robustness.png", title=args.benchmark, heldout=read_testbed(args.weather)["heldout"])
    qualitative_grid(model, size, args.weather, device, plots / "robustness_examples.png", min_area=min_area)

    ev = evaluate_ood(model, args.prepared, args.ood, input_size=size, eval_split=split, method=oc.method,
                      temperature=oc.temperature, percentile=oc.percentile, batch_size=cfg.batch_size, device=device,
                      min_area=min_area)
    metrics["ood"] = ev.metrics
    roc_plot(ev, plots / "ood_roc.png", title=f"{args.benchmark}: OOD detection")
    score_histogram(ev, plots / "ood_scores.png", title=f"{args.benchmark}: {oc.method} on test")
    write_scores_csv(ev, plots / "ood_scores.csv")
    save_ood_model(ood_model_from(ev, model), args.ood_model)

    write_json(args.metrics, metrics)
    print(f"evaluate@{args.benchmark} on {split}: Dice {metrics['dice']:.4f}, mIoU {metrics['miou']:.4f}, "
          f"{metrics['gflops']:.1f} GFLOPs, {metrics['params_m']:.2f} M params, "
          f"efficiency {metrics['efficiency']['score']:.3f}, corrupted Dice {rob['dice_corrupted_mean']:.4f}, "
          f"OOD score {ev.metrics['score']:.4f} (accept-all {ev.metrics['score_accept_all']:.4f})")


if __name__ == "__main__":
    run_stage(main)
