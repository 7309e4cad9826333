"""Throughput of the `prepare` stage at full Cityscapes resolution (2048x1024), next to its floor.

The floor is the unavoidable PNG work for the same files with the same number of processes:
decode image + labelIds + disparity, encode labelTrainIds + depth. Everything `prepare` does
beyond that (validation, id mapping, resizing, the cache) is the overhead.

    python benchmarks/prepare_speed.py --images 16
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

from cityseg.config import SynthCityConfig
from cityseg.prepare import prepare, scan_root
from cityseg.synthcity import generate


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _floor_one(args) -> None:
    item, out = args
    cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    label = cv2.imread(str(item.label), cv2.IMREAD_UNCHANGED)
    disp = cv2.imread(str(item.disparity), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(out / f"{item.stem}_t.png"), label)
    cv2.imwrite(str(out / f"{item.stem}_d.png"), disp)


def floor(items, workers: int, out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_floor_one, [(it, out) for it in items]))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16, help="train images to generate (val gets a quarter)")
    ap.add_argument("--workers", type=int, nargs="*", default=None, help="process counts to try (default: 1 and all)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    workers = args.workers or sorted({1, cores})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthcity"
        cfg = SynthCityConfig(seed=1, height=1024, width=2048, train=args.images, val=max(1, args.images // 4), test=0)
        generate(root, cfg, workers=cores, progress=False)
        items = [it for split in scan_root(root).values() for it in split]
        rows = []
        for w in workers:
            out = Path(tmp) / f"prepared{w}"
            start = time.perf_counter()
            prepare(root, out, "synthcity", (256, 512), workers=w, progress=False)
            t_prep = time.perf_counter() - start
            shutil.rmtree(out)
            t_floor = floor(items, w, Path(tmp) / f"floor{w}")
            rows.append((w, len(items) / t_prep, len(items) / t_floor, t_prep / t_floor))
    print(f"\nprepare at 2048x1024, {len(items)} images, on {cpu_model()} ({cores} cores)\n")
    print("| processes | prepare (images/s) | floor: PNG decode+encode only (images/s) | prepare / floor time |")
    print("|---:|---:|---:|---:|")
    for w, ips, fps, ratio in rows:
        print(f"| {w} | {ips:.2f} | {fps:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
