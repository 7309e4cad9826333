"""Training throughput (images/s) of benchmark models, side by side for each device set-up.

One optimizer step = forward, cross-entropy, backward, AdamW step, on random images and labels of
the given size and batch (the data pipeline is left out: this measures the network). Every set-up
is timed in this one process, so the rows compare directly:

* CPU fp32 (the reference) and bf16 autocast (what `train.amp: auto` does on a CPU with native bf16,
  see `cityseg.train.amp_dtype_for`), each with and without channels_last (`train.cpu_channels_last`);
* CUDA fp32 and CUDA bf16 autocast + channels_last (what training uses on a GPU), when one exists.

    python benchmarks/train_speed.py --benchmarks baseline --size 256 512 --batch 32
    python benchmarks/train_speed.py --benchmarks baseline --size 128 256 --batch 2 --base-channels 8 16 32

``--base-channels`` times the U-Net at several ``model.base_channels``: on a CPU, narrow layers are
bound by memory traffic rather than arithmetic, so time per step grows far slower than FLOPs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from cityseg.config import benchmark_configs, load_params
from cityseg.flops import count_flops
from cityseg.labels import NUM_CLASSES
from cityseg.models import build_model
from latency import hardware, markdown_table  # benchmarks/ is the script's folder, so it is on sys.path


def step_times(model: torch.nn.Module, size: tuple[int, int], batch: int, device: str, dtype: torch.dtype,
               channels_last: bool, steps: int, warmup: int) -> list[float]:
    """Seconds per training step (after ``warmup`` untimed steps)."""
    torch.manual_seed(0)
    net = model.to(device).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, *size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch, *size), device=device)
    amp = torch.autocast(device, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        with amp:
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", nargs="+", default=["baseline"])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 512], help="[H W] of the training images")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per set-up (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--base-channels", type=int, nargs="+", default=None,
                    help="U-Net benchmarks only: time each of these model.base_channels instead of the params' value")
    args = ap.parse_args()
    params = load_params()
    setups = [("cpu", dtype, cl) for dtype in (torch.float32, torch.bfloat16) for cl in (False, True)]
    if torch.cuda.is_available():
        setups += [("cuda", torch.float32, False), ("cuda", torch.bfloat16, True)]
    rows = []
    variants = []  # (row label, model config)
    for name in args.benchmarks:
        model_cfg = benchmark_configs(params, name)[0]
        if args.base_channels and model_cfg.arch == "unet":
            variants += [(f"{name}, base {c}", dataclasses.replace(model_cfg, base_channels=c)) for c in args.base_channels]
        else:
            variants.append((name, model_cfg))
    for label, model_cfg in variants:
        reference = None
        gflops = count_flops(build_model(model_cfg), tuple(args.size)) / 1e9  # forward, one image
        for device, dtype, cl in setups:
            model = build_model(model_cfg)  # fresh weights per set-up: the same seed-free init is fine for speed
            t = statistics.median(step_times(model, tuple(args.size), args.batch, device, dtype, cl,
                                             args.steps, args.warmup))
            ips = args.batch / t
            reference = reference or ips
            rows.append([label, f"{gflops:.2f}", device, str(dtype).replace("torch.", ""), "yes" if cl else "no",
                         hardware(device, torch.get_num_threads()), f"{ips:.1f}", f"{ips / reference:.2f}x"])
    print(f"\ntraining step, batch {args.batch}, {args.size[0]}x{args.size[1]}, median of {args.steps} steps\n")
    print(markdown_table(["model", "GFLOPs/image", "device", "dtype", "channels_last", "hardware", "images/s", "vs CPU fp32"],
                         rows, right=2))


if __name__ == "__main__":
    main()
