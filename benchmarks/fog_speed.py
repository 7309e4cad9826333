"""Time cityseg.weather.fog per frame against the floor of just decoding + encoding the PNG.

Synthetic but realistic inputs: a textured 2048x1024 image and a depth map from the flat-ground
prior with vertical "buildings" at closer depth and unknown pixels (sky above the horizon plus
random occlusion holes; the fraction is printed), so depth completion runs as it would on real data;
and a SynthCity frame at the same size with its trainIds and Cityscapes-like degraded disparity, for
the label-guided paths the weather test bed takes (disparity + labels, labels only).

    .venv/bin/python benchmarks/fog_speed.py --runs 5 --size 1024 2048
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import cv2
import numpy as np

from cityseg import labels as L
from cityseg import weather as W
from cityseg.synthcity import render_scene
from cityseg.stereo import degraded_depth


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def torch_threads() -> str:
    try:
        import torch
    except ImportError:
        return "n/a"
    return str(torch.get_num_threads())


def make_inputs(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Textured image (smooth blobs + fine grain) and a street-like depth map with holes."""
    rng = np.random.default_rng(seed)
    cam = W.default_camera(height, width)
    depth = W.fallback_depth(height, width, cam)
    horizon = int(W.horizon_row(cam))
    # vertical "buildings" / poles / cars: columns of constant, closer depth standing on the ground
    for _ in range(14):
        u0 = int(rng.integers(0, width - 20))
        u1 = min(width, u0 + int(rng.integers(10, width // 6)))
        z = float(rng.uniform(6.0, 80.0))
        top = int(rng.integers(0, max(1, horizon)))
        bottom = min(height, int(horizon + (height - horizon) * min(1.0, 8.0 / z)))
        depth[top:bottom, u0:u1] = np.minimum(depth[top:bottom, u0:u1], z)
    # unknown depth: sky (still at max) and random occlusion holes
    depth[depth >= W.DEFAULT_MAX_DEPTH] = 0.0
    holes = cv2.resize(rng.random((height // 32, width // 32)).astype(np.float32), (width, height)) > 0.93
    depth[holes] = 0.0
    blobs = cv2.resize(rng.random((height // 16, width // 16, 3)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    img = blobs * 200.0 + rng.normal(0.0, 4.0, (height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), depth.astype(np.float32), cam


def median_time(fn, runs: int) -> float:
    fn()  # warm-up: first call pays for allocations and lazy initialisation
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per row (median reported)")
    ap.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    ap.add_argument("--beta", type=float, default=0.01, help="fog density (m^-1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv2-threads", type=int, default=None,
                    help="cv2.setNumThreads before timing (cityseg.io sets 1 in pipeline workers)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.cv2_threads is not None:
        cv2.setNumThreads(args.cv2_threads)
    h, w = args.size
    img, depth, cam = make_inputs(h, w, args.seed)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    png = cv2.imencode(".png", bgr)[1]

    scene = render_scene(np.random.default_rng([0, 2, 0]), h, w)
    lab, s_disp = L.ID_TO_TRAIN_ID[scene.label_ids], degraded_depth(scene, np.random.default_rng(0))
    s_img, s_cam = scene.image, scene.camera
    rows = [
        ("fog, SynthCity frame: degraded disparity + labels",
         median_time(lambda: W.fog(s_img, s_disp, s_cam, args.beta, labels=lab), args.runs)),
        ("fog, SynthCity frame: labels only (label-guided prior)",
         median_time(lambda: W.fog(s_img, None, s_cam, args.beta, labels=lab), args.runs)),
        ("fog, refine=True (guided filter)", median_time(lambda: W.fog(img, depth, cam, args.beta, refine=True), args.runs)),
        ("fog, refine=False", median_time(lambda: W.fog(img, depth, cam, args.beta, refine=False), args.runs)),
        ("rain, level 2 (for reference)", median_time(lambda: W.rain(img, depth, cam, 2, seed=0), args.runs)),
        ("floor: PNG decode + encode (cv2)",
         median_time(lambda: cv2.imencode(".png", cv2.imdecode(png, cv2.IMREAD_COLOR)), args.runs)),
    ]
    unknown = float(np.mean(~(depth > 0)))
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); "
          f"cv2 threads: {cv2.getNumThreads()}; torch threads: {torch_threads()}")
    print(f"image {w}x{h}, beta {args.beta}, {unknown:.1%} unknown depth, PNG {png.nbytes / 1e6:.2f} MB, "
          f"median of {args.runs} runs\n")
    floor = rows[-1][1]
    print("| step | s / image | x floor |")
    print("|---|---:|---:|")
    for name, sec in rows:
        print(f"| {name} | {sec:.3f} | {sec / floor:.1f} |")


if __name__ == "__main__":
    main()
