"""The efficiency benchmark: Dice per FLOP as the course scores it, and measured latency.

Course rule (slides): "the dice score needs to be at least 80% of our baseline solution,
otherwise metric = 0". The score is mean Dice per TFLOP, FLOPs counted by FlopCounterMode on
``Model()`` at 1x3x1024x2048 (see ``cityseg.flops``).
"""

from __future__ import annotations

import torch

from cityseg.config import EfficiencyConfig
from cityseg.flops import measure_latency


def efficiency_score(dice: float, gflops: float, baseline_dice: float, gate: float = 0.8) -> float:
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
