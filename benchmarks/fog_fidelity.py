"""How faithful is synthetic fog (and rain's veil) to the exact depth, per depth source, on SynthCity.

SynthCity renders exact depth, so the transmission t = exp(−β·ℓ) of each depth source can be
compared with the exact one. Frames are the embedded default's test split (rendered exactly as
`generate` renders them); sources:

* exact: the rendered depth (the guided-filter refinement alone separates it from t_exact);
* degraded disparity + labels: the depth degraded like Cityscapes' disparity
  (cityseg.stereo: sky, bonnet, a 3% left band, occlusions, specular and textureless holes),
  completed with the trainId labels, as the weather test bed does for a prepared set with disparity;
* labels only: the label-guided prior (no disparity: what most users have);
* flat prior: the old flat-ground prior (no disparity, no labels).

Reported per β: mean |t − t_exact| of the raw and of the refined (guided filter) transmission, the
share of near pixels (exact t > 0.75) whited out (t < 0.3), and the ego vehicle's mean refined t;
for rain, the veil A = 1 − exp(−β·ℓ) the same way. Last line: one JSON object with every figure.

    python benchmarks/fog_fidelity.py --images 20 [--figure reports/figures/fog_depth_sources.png]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from cityseg import labels as L
from cityseg.config import SynthCityConfig
from cityseg.depth import fallback_depth, label_prior, ray_distance, scene_depth
from cityseg.synthcity import EGO, render_scene
from cityseg.stereo import degraded_depth
from cityseg.weather import RAIN_LEVELS, fog, transmission
from fog_speed import cpu_model  # benchmarks/ is on sys.path when run as a script

FOG_BETAS = (0.005, 0.01, 0.02)
SOURCES = ("exact", "degraded disparity + labels", "labels only", "flat prior")


def frame(cfg: SynthCityConfig, i: int):
    """Test frame i of the embedded default: (scene, trainIds, degraded depth, depth per source)."""
    scene = render_scene(np.random.default_rng([cfg.seed, 2, i]), cfg.height, cfg.width)
    lab = L.ID_TO_TRAIN_ID[scene.label_ids]
    disp = degraded_depth(scene, np.random.default_rng([cfg.seed, 99, i]))
    cam = scene.camera
    depths = {
        "exact": np.where(np.isfinite(scene.depth), scene.depth, 1e9).astype(np.float32),
        "degraded disparity + labels": scene_depth(lab.shape, disp, lab, cam)[0],
        "labels only": label_prior(lab, cam),
        "flat prior": fallback_depth(*lab.shape, cam),
    }
    return scene, disp, depths


def score(scene, depths: dict, stats: dict) -> None:
    """Add one frame's figures to ``stats[(kind, beta, source)]`` lists."""
    cam, ego = scene.camera, scene.label_ids == EGO
    ell = {k: ray_distance(z, cam) for k, z in depths.items()}
    for beta in FOG_BETAS:
        t_exact = np.exp(-beta * ell["exact"])
        near = t_exact > 0.75
        for src, z in depths.items():
            t = np.exp(-beta * ell[src])
            refined = transmission(scene.image, z, cam, beta)
            stats.setdefault(("fog", beta, src), []).append(
                (np.abs(t - t_exact).mean(), np.abs(refined - t_exact).mean(),
                 ((refined < 0.3) & near).sum() / max(near.sum(), 1), refined[ego].mean() if ego.any() else 1.0))
    for level, rl in RAIN_LEVELS.items():
        veil_exact = 1.0 - np.exp(-rl.beta * ell["exact"])
        clear = veil_exact < 0.25
        for src in depths:
            veil = 1.0 - np.exp(-rl.beta * ell[src])
            stats.setdefault(("rain", level, src), []).append(
                (np.abs(veil - veil_exact).mean(), ((veil > 0.7) & clear).sum() / max(clear.sum(), 1)))


def figure(cfg: SynthCityConfig, index: int, beta: float, path: str) -> None:
    from cityseg.plots import plt, save_figure

    scene, _, depths = frame(cfg, index)
    fig, axes = plt.subplots(1, 5, figsize=(17, 2.4))
    axes[0].imshow(scene.image)
    axes[0].set_title("clear", fontsize=9)
    for ax, src in zip(axes[1:], SOURCES):
        ax.imshow(fog(scene.image, depths[src], scene.camera, beta))
        ax.set_title(f"fog beta={beta}: {src}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20, help="first N test frames of the embedded default")
    ap.add_argument("--figure", default=None, help="also write the same frame fogged from each depth source here")
    ap.add_argument("--figure-index", type=int, default=3)
    ap.add_argument("--figure-beta", type=float, default=0.02)
    args = ap.parse_args()
    cfg = SynthCityConfig()
    if not 1 <= args.images <= cfg.test:
        ap.error(f"--images must be within 1..{cfg.test}")
    start, stats, invalid = time.perf_counter(), {}, []
    for i in range(args.images):
        scene, disp, depths = frame(cfg, i)
        invalid.append(float(np.mean(~(disp > 0))))
        score(scene, depths, stats)
    mean = {k: np.mean(v, axis=0).tolist() for k, v in stats.items()}
    print(f"SynthCity test frames 0..{args.images - 1} at {cfg.width}x{cfg.height}; degraded disparity "
          f"{np.mean(invalid):.1%} invalid; {cpu_model()} ({os.cpu_count()} cores), {time.perf_counter() - start:.1f} s\n")
    print("| depth source | beta | mean abs(t - t_exact) raw | refined | near whited out | ego vehicle t |")
    print("|---|---:|---:|---:|---:|---:|")
    for src in SOURCES:
        for beta in FOG_BETAS:
            raw, ref, white, ego = mean[("fog", beta, src)]
            print(f"| {src} | {beta} | {raw:.3f} | {ref:.3f} | {white:.2%} | {ego:.3f} |")
    print("\n| depth source | rain level (veil beta) | mean abs(A - A_exact) | clear pixels veiled (A > 0.7) |")
    print("|---|---:|---:|---:|")
    for src in SOURCES:
        for level, rl in RAIN_LEVELS.items():
            err, veiled = mean[("rain", level, src)]
            print(f"| {src} | {level} ({rl.beta}) | {err:.3f} | {veiled:.2%} |")
    record = {"benchmark": "fog_fidelity", "machine": cpu_model(), "images": args.images,
              "size": [cfg.height, cfg.width], "invalid_disparity": round(float(np.mean(invalid)), 4),
              "fog": {f"{src}@{beta}": [round(v, 4) for v in mean[("fog", beta, src)]]
                      for src in SOURCES for beta in FOG_BETAS},
              "rain": {f"{src}@{level}": [round(v, 4) for v in mean[("rain", level, src)]]
                       for src in SOURCES for level in RAIN_LEVELS}}
    print("\n" + json.dumps(record))
    if args.figure:
        figure(cfg, args.figure_index, args.figure_beta, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
