"""The efficiency benchmark: Dice per FLOP as the course scores it, and measured latency.

Course rule (slides): "the dice score needs to be at least 80% of our baseline solution,
otherwise metric = 0" (``efficiency.gate``). The score is mean Dice per TFLOP, FLOPs counted by
FlopCounterMode on ``Model()`` at 1x3x1024x2048 (see ``cityseg.flops``).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from cityseg.config import EfficiencyConfig
from cityseg.evaluate import evaluate_model, tune_min_area
from cityseg.flops import measure_latency
from cityseg.inference import Predictor


def efficiency_score(dice: float, gflops: float, baseline_dice: float, gate: float) -> float:
    """Dice / TFLOPs, or 0 when ``dice < gate * baseline_dice``."""
    if gflops <= 0:
        raise ValueError(f"gflops must be positive, got {gflops}")
    if dice < gate * baseline_dice:
        return 0.0
    return dice / (gflops / 1000.0)


def latency_metrics(model: torch.nn.Module, cfg: EfficiencyConfig) -> dict:
    """Batch-1 latency at ``cfg.latency_size``: CPU fp32 always; CUDA fp32 and bf16 when a GPU is present.

    Keys are suffixed by device/dtype (``latency_ms_cpu``, ``fps_cuda_bf16``, ...), with the CPU thread count
    and the number of timed runs recorded beside them.
    """
    size = tuple(cfg.latency_size)
    out: dict = {}
    cpu = measure_latency(model, size, "cpu", torch.float32, cfg.latency_warmup, cfg.latency_runs,
                          threads=cfg.threads or None, budget_s=cfg.latency_budget_s or None, min_runs=2)
    out.update(latency_ms_cpu=round(cpu["median_ms"], 3), fps_cpu=round(cpu["fps"], 3),
               cpu_threads=cpu["threads"], latency_runs_cpu=cpu["runs"])
    if torch.cuda.is_available():
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            res = measure_latency(model, size, "cuda", dtype, cfg.latency_warmup, cfg.latency_runs, channels_last=True)
            out[f"latency_ms_cuda_{name}"] = round(res["median_ms"], 3)
            out[f"fps_cuda_{name}"] = round(res["fps"], 2)
    return out


def efficiency_metrics(predictor: Predictor, dice: float, gflops: float, checkpoint: str | os.PathLike,
                       baseline: str | os.PathLike, prepared: str | os.PathLike, split: str, batch_size: int,
                       cfg: EfficiencyConfig, selection_split: str | None = None,
                       candidates: Sequence[float] = ()) -> dict:
    """The ``efficiency`` block of a metrics file: score, the baseline Dice it is gated on, latency.

    ``dice``/``gflops``: the model's (from `evaluate.score_split`). The gate compares with the
    baseline's Dice on the same split, recomputed from the ``baseline`` checkpoint (the stage that
    evaluates the baseline cannot depend on its own metrics file); when ``checkpoint`` *is* the
    baseline, its own ``dice`` is the reference. With a ``selection_split``, the baseline's small-class
    threshold is chosen among ``candidates`` there, as its own evaluation chose it (else its checkpoint's).
    """
    if os.path.samefile(checkpoint, baseline):
        baseline_dice = dice
    else:
        reference = Predictor.from_checkpoint(baseline, predictor.device)
        if selection_split is not None:
            reference = tune_min_area(reference, prepared, selection_split, list(candidates), batch_size, False)[0]
        baseline_dice = evaluate_model(reference, prepared, split, batch_size, progress=False)[0]["dice"]
    return {
        "score": round(efficiency_score(dice, gflops, baseline_dice, cfg.gate), 4),
        "baseline_dice": baseline_dice,
        "dice_ratio_to_baseline": round(dice / baseline_dice, 4) if baseline_dice else None,
        **latency_metrics(predictor.model, cfg),
    }
