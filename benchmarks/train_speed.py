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

``--data PREPARED`` times instead the whole training step as ``stages/train.py`` runs it
(`cityseg.train.train_one_epoch`: the benchmark's recipe, loss, optimizer, precision and memory format) on the
device training would use (CUDA when there is one), twice in one run: fed by our loader from that prepared
dataset (`SegDataset` + its ``train.augment`` + `make_loader`, ``--workers`` persistent workers, uint8
batches normalised on the device), and fed one batch of it already on the device, the ceiling. The ratio says
how much of the network's speed the data pipeline leaves (1.00x: loading is hidden behind the step):

    python benchmarks/train_speed.py --benchmarks baseline peak --data data/prepared --workers 8 --size 256 512 --batch 32
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import statistics
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import torch
import torch.nn.functional as F

from cityseg.config import ModelConfig, TrainConfig, benchmark_configs, load_params
from cityseg.dataset import SegDataset, load_cache
from cityseg.flops import count_flops
from cityseg.labels import NUM_CLASSES
from cityseg.models import build_model
from cityseg.train import amp_dtype_for, build_loss, build_optimizer, make_loader, train_one_epoch
from cityseg.transforms import build_train_transform
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


def epochs_of(loader) -> Iterator:
    """The batches of ``loader`` (a training `make_loader`), epoch after epoch, without end."""
    for epoch in itertools.count():
        loader.batch_sampler.set_epoch(epoch)
        yield from loader


def images_per_s(batches: Iterator, model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 steps: int, warmup: int) -> float:
    """Images/s of ``steps`` training steps (`train_one_epoch`, which ends in a sync) after ``warmup`` untimed."""
    opt = build_optimizer(model, cfg)
    amp, channels_last = amp_dtype_for(device, cfg.amp), device.type == "cuda" or cfg.cpu_channels_last

    def run(n: int) -> dict:
        return train_one_epoch(model, itertools.islice(batches, n), opt, None, build_loss(cfg), device, amp,
                               channels_last)

    run(warmup)
    t0 = time.perf_counter()
    seen = run(steps)["seen"]
    return seen / (time.perf_counter() - t0)


def with_loader(model_cfg: ModelConfig, cfg: TrainConfig, prepared: Path, steps: int, warmup: int) -> dict:
    """Images/s of the training step fed by our loader ("loader") and by one of its batches kept on the device
    ("on_device"), each with a fresh model, and the device, autocast dtype and memory format they ran at."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset = SegDataset(load_cache(prepared, "train"), build_train_transform(cfg), seed=cfg.seed)
    loader = make_loader(dataset, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers, seed=cfg.seed,
                         pin_memory=device.type == "cuda", prefetch_factor=cfg.prefetch_factor)
    channels_last = device.type == "cuda" or cfg.cpu_channels_last
    rates = {}
    for feed in ("on_device", "loader"):
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg).to(device)
        model = model.to(memory_format=torch.channels_last) if channels_last else model
        if feed == "on_device":  # one uint8 batch, resident: the step still normalises it, as it does a loaded one
            images, masks = next(iter(loader))
            batches: Iterable = itertools.repeat((images.to(device), masks.to(device)))
        else:
            batches = epochs_of(loader)
        rates[feed] = images_per_s(iter(batches), model, cfg, device, steps, warmup)
    amp = amp_dtype_for(device, cfg.amp)
    return {"device": device.type, "dtype": str(amp or torch.float32).replace("torch.", ""),
            "channels_last": channels_last, **rates}


def loader_rows(args: argparse.Namespace, params: dict) -> list[list[str]]:
    """The ``--data`` table: per benchmark, the ceiling (data on the device) and the step fed by our loader."""
    rows = []
    for name in args.benchmarks:
        model_cfg, cfg = benchmark_configs(params, name)[:2]
        cfg = dataclasses.replace(cfg, size=list(args.size), batch_size=args.batch, num_workers=args.workers)
        gflops = count_flops(build_model(model_cfg), tuple(args.size)) / 1e9
        r = with_loader(model_cfg, cfg, args.data, args.steps, args.warmup)
        common = [f"{name} ({cfg.augment})", f"{gflops:.2f}", r["device"], r["dtype"],
                  "yes" if r["channels_last"] else "no", hardware(r["device"], torch.get_num_threads())]
        rows.append(common + ["on the device (ceiling)", f"{r['on_device']:.1f}", "1.00x"])
        rows.append(common + [f"our loader, {args.workers} workers", f"{r['loader']:.1f}",
                              f"{r['loader'] / r['on_device']:.2f}x"])
    return rows


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", nargs="+", default=["baseline"])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 512], help="[H W] of the training images")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per set-up (median reported; --data: all of them)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--base-channels", type=int, nargs="+", default=None,
                    help="U-Net benchmarks only: time each of these model.base_channels instead of the params' value")
    ap.add_argument("--data", type=Path, default=None, metavar="PREPARED",
                    help="time the training step fed by our loader from this prepared dataset against the data on the device")
    ap.add_argument("--workers", type=int, default=4, help="--data: DataLoader workers")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.data is not None:
        rows = loader_rows(args, params)
        print(f"\ntraining step with data loading, batch {args.batch}, {args.size[0]}x{args.size[1]}, "
              f"{args.steps} steps after {args.warmup}\n")
        print(markdown_table(["model (augment)", "GFLOPs/image", "device", "dtype", "channels_last", "hardware", "data",
                              "images/s", "vs on the device"], rows, right=2))
        return
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
