"""Batch-1 latency and FPS at 1x3x1024x2048 (the course's input) for benchmark models, side by side.

Models are rebuilt from their checkpoints (models/<benchmark>/best.pt) when present, else from params.yaml
(latency does not depend on the weights). CPU always; CUDA fp32 and bf16 (channels_last) when a GPU exists.

    python benchmarks/latency.py --benchmarks baseline efficient --runs 50
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from cityseg.config import benchmark_configs, load_params
from cityseg.flops import count_flops, measure_latency
from cityseg.models import build_model, load_checkpoint


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def hardware(device: str, threads: int) -> str:
    """The card's name on CUDA, else the CPU model and the thread count: written beside every figure."""
    return torch.cuda.get_device_name() if device == "cuda" else f"{cpu_model()}, {threads} threads"


def markdown_table(header: list[str], rows: list[list[str]], right: int) -> str:
    """A Markdown table; the last ``right`` columns are right-aligned numbers."""
    align = ["---"] * (len(header) - right) + ["---:"] * right
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", nargs="+", default=["baseline", "efficient"])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=[1024, 2048])
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = ap.parse_args()
    params = load_params()
    rows = []
    for name in args.benchmarks:
        ckpt = Path("models") / name / "best.pt"
        model = load_checkpoint(ckpt)[0] if ckpt.exists() else build_model(benchmark_configs(params, name)[0])
        gflops = count_flops(model, tuple(args.size)) / 1e9
        setups = [("cpu", torch.float32, False)]
        if torch.cuda.is_available():
            setups += [("cuda", torch.float32, True), ("cuda", torch.bfloat16, True)]
        for device, dtype, cl in setups:
            r = measure_latency(model, tuple(args.size), device, dtype, args.warmup, args.runs, args.threads, cl)
            rows.append([name, f"{gflops:.1f}", r["dtype"], hardware(device, r["threads"]), f"{r['median_ms']:.1f}",
                         f"{r['fps']:.2f}", str(r["runs"])])
    print(f"\nbatch 1, input 1x3x{args.size[0]}x{args.size[1]}, median of the timed runs\n")
    print(markdown_table(["model", "GFLOPs", "dtype", "device", "median ms", "FPS", "runs"], rows, right=3))


if __name__ == "__main__":
    main()
