"""Writing the SynthCity dataset in the Cityscapes layout: one frame per job over a process pool."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from cityseg import labels
from cityseg.config import SynthCityConfig
from cityseg.io import atomic_dir
from cityseg.parallel import pmap, resolve_workers
from cityseg.synthcity.render import disparity_png, render_scene
from cityseg.synthcity.scene import CITIES, EGO, SPLITS


def _stem(split: str, i: int, n: int) -> tuple[str, str]:
    """City and Cityscapes file stem of frame i of n in ``split`` (frames spread over the cities in blocks)."""
    cities = CITIES[split]
    k = min(i * len(cities) // max(n, 1), len(cities) - 1)
    first = -(-k * n // len(cities))  # first index assigned to city k
    return cities[k], f"{cities[k]}_{i - first:06d}_000019"


def _make_one(task: tuple) -> tuple[int, np.ndarray, int]:
    """Render, encode and write one frame; returns (split index, label-id histogram, invalid disparity px)."""
    seed, si, i, n, H, W, out = task
    split = SPLITS[si]
    rng = np.random.default_rng([seed, si, i])
    scene = render_scene(rng, H, W)
    depth = np.where(scene.label_ids == EGO, np.inf, scene.depth)  # the bonnet has no stereo match
    disp = disparity_png(depth, scene.camera, rng)
    city, stem = _stem(split, i, n)
    out = Path(out)
    files = {
        out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png": cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
        out / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png": scene.label_ids,
        out / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png": scene.instance_ids.astype(np.uint16),
        out / "gtFine" / split / city / f"{stem}_gtFine_color.png":
            cv2.cvtColor(labels.LABEL_ID_PALETTE[scene.label_ids], cv2.COLOR_RGB2BGR),
        out / "disparity" / split / city / f"{stem}_disparity.png": disp,
    }
    for path, arr in files.items():
        if not cv2.imwrite(str(path), arr):
            raise OSError(f"{path}: could not write PNG")
    cam_path = out / "camera" / split / city / f"{stem}_camera.json"
    cam_path.write_text(json.dumps(scene.camera, indent=2, sort_keys=True) + "\n")
    hist = np.bincount(scene.label_ids.ravel(), minlength=256)[:34].astype(np.int64)
    return si, hist, int((disp == 0).sum())


def generate(root: Path, cfg: SynthCityConfig, workers: int = 0, progress: bool = True) -> dict:
    """Write the SynthCity dataset under ``root`` in the exact Cityscapes layout; returns a summary.

    Frame i of split s (train, val, test = 0, 1, 2) is rendered from
    ``np.random.default_rng([cfg.seed, s, i])``, so the bytes on disk do not depend on ``workers``
    (0 = all cores, 1 = serial). The tree is built in a temporary sibling directory that replaces
    ``root`` only when complete. The summary holds the image counts, cities, per-split label-id
    pixel counts, the trainId class frequencies of the train split and the fraction of invalid
    disparity pixels (plus timing, which is not deterministic).
    """
    if not isinstance(cfg, SynthCityConfig):
        raise ValueError(f"cfg: expected SynthCityConfig, got {type(cfg).__name__}")
    workers = resolve_workers(workers)
    root = Path(root)
    counts = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    start = time.perf_counter()
    hists = {s: np.zeros(34, np.int64) for s in SPLITS}
    invalid = 0
    with atomic_dir(root) as tmp:
        tasks = []
        for si, split in enumerate(SPLITS):
            n = counts[split]
            for i in range(n):
                city, _ = _stem(split, i, n)
                for top in ("leftImg8bit", "gtFine", "disparity", "camera"):
                    (tmp / top / split / city).mkdir(parents=True, exist_ok=True)
                tasks.append((cfg.seed, si, i, n, cfg.height, cfg.width, str(tmp)))
        for si, hist, inv in pmap(_make_one, tasks, workers, "synthcity", "img", progress):
            hists[SPLITS[si]] += hist
            invalid += inv
    total_px = sum(counts.values()) * cfg.height * cfg.width
    train_ids = labels.ID_TO_TRAIN_ID[:34]
    tr = np.zeros(labels.NUM_CLASSES, np.int64)
    for lid in range(34):
        if train_ids[lid] < labels.NUM_CLASSES:
            tr[train_ids[lid]] += hists["train"][lid]
    return {
        "root": str(root), "seed": cfg.seed, "height": cfg.height, "width": cfg.width,
        "images": counts, "cities": {s: list(CITIES[s]) for s in SPLITS},
        "label_id_pixels": {s: hists[s].tolist() for s in SPLITS},
        "train_class_frequency": {name: round(float(tr[k] / max(tr.sum(), 1)), 5)
                                  for k, name in enumerate(labels.CLASS_NAMES)},
        "invalid_disparity_fraction": round(invalid / max(total_px, 1), 4),
        "workers": workers, "seconds": round(time.perf_counter() - start, 2),
    }
