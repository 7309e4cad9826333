"""The robustness test bed (the ``weather`` stage): fog, rain and corruptions of the evaluation split.

Test bed layout under ``<out>`` (every folder a Cityscapes-layout root that any tool can read)::

    manifest.json                                   conditions, severities, β, stems, split, depth source
                                                    per image (cityseg.depth.DEPTH_SOURCES)
    clean/                                          the clean images of the same subset (hard links)
    <condition>/<severity>/manifest.json            readable by cityseg.dataset.full_res_samples
    <condition>/<severity>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    <condition>/<severity>/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png   (hard links, unchanged)

Conditions: ``fog`` (severity k = the k-th of ``weather.fog_betas``, Foggy Cityscapes with the
prepared depth and camera), ``rain`` (severity = Rain Cityscapes level 1..3) and every corruption of
``weather.corruptions`` at every ``weather.severities`` (Cityscapes-C style, cityseg.corruptions).
Images are rendered at the prepared (original) resolution, where the evaluation scores them.
Scoring a model on it is ``cityseg.robustness``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import cv2
import numpy as np

from cityseg.config import ConfigError, WeatherConfig
from cityseg.corruptions import CORRUPTIONS, corrupt
from cityseg.dataset import Sample, city_of, full_res_samples, read_manifest, read_sample
from cityseg.io import DataError, atomic_dir, link_or_copy, read_json, write_json
from cityseg.parallel import pmap
from cityseg.plots import plt, save_figure
from cityseg.depth import default_camera, depth_source
from cityseg.weather import RAIN_LEVELS, fog, rain

log = logging.getLogger(__name__)

# Fixed order of every possible condition: a condition's seed uses its index here, so adding or
# removing a corruption in params.yaml leaves the images of the other conditions unchanged.
CONDITION_NAMES: tuple[str, ...] = ("fog", "rain", *CORRUPTIONS)
CLEAN = "clean"


def testbed_conditions(cfg: WeatherConfig) -> dict[str, list[int]]:
    """Condition name -> its severities, in test-bed order; ConfigError for unknown/duplicate names."""
    corruptions = list(cfg.corruptions)
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        hint = ""
        if {"fog", "rain"} & set(unknown):
            hint = " (fog and rain come from weather.fog_betas / weather.rain_levels)"
        raise ConfigError(f"weather.corruptions: unknown corruption(s) {unknown}{hint}; "
                          f"valid names: {', '.join(CORRUPTIONS)}")
    if dups := sorted({c for c in corruptions if corruptions.count(c) > 1}):
        raise ConfigError(f"weather.corruptions lists {dups} more than once")
    if len(set(cfg.severities)) != len(cfg.severities) or len(set(cfg.rain_levels)) != len(cfg.rain_levels):
        raise ConfigError(f"weather.severities and weather.rain_levels must not repeat a value, got "
                          f"{cfg.severities} and {cfg.rain_levels}")
    conditions: dict[str, list[int]] = {}
    if cfg.fog_betas:
        conditions["fog"] = list(range(1, len(cfg.fog_betas) + 1))
    if cfg.rain_levels:
        conditions["rain"] = sorted(int(v) for v in cfg.rain_levels)
    if cfg.severities:
        for name in CORRUPTIONS:  # the library's order (noise, blur, digital, weather), whatever the list's
            if name in corruptions:
                conditions[name] = sorted(int(v) for v in cfg.severities)
    if not conditions:
        raise ConfigError("weather: the test bed is empty (set weather.fog_betas, weather.rain_levels or "
                          "weather.corruptions and weather.severities)")
    if bad := [h for h in cfg.heldout if h not in conditions]:
        raise ConfigError(f"weather.heldout names {bad}, which the test bed does not contain "
                          f"(its conditions: {', '.join(conditions)})")
    return conditions


def condition_seed(seed: int, condition: str, severity: int, image_index: int) -> int:
    """The seed of one rendered image: a pure function of (weather.seed, condition, severity, image)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, CONDITION_NAMES.index(condition), int(severity),
                                 int(image_index)])
    return int(ss.generate_state(1)[0])


def render(image: np.ndarray, depth: Optional[np.ndarray], camera: dict, condition: str, severity: int,
           seed: int, fog_betas: Sequence[float], labels: Optional[np.ndarray] = None) -> np.ndarray:
    """One image under ``condition`` at ``severity``, uint8 (H, W, 3). Fog and rain use the frame's
    depth with its holes filled by label, or the label-guided prior without depth (``labels``:
    trainIds), or the flat-ground prior with neither (``cityseg.depth.scene_depth``)."""
    if condition == "fog":
        return fog(image, depth, camera, float(fog_betas[severity - 1]), labels=labels)
    if condition == "rain":
        return rain(image, depth, camera, int(severity), seed=seed, labels=labels)
    return corrupt(image, condition, int(severity), seed)


@dataclass(frozen=True)
class _Job:
    """Render one image under one condition at all its severities (runs in a worker process)."""

    index: int  # position of the image in the test bed (for its seed)
    sample: Sample
    split: str
    condition: str
    severities: tuple[int, ...]
    fog_betas: tuple[float, ...]
    seed: int
    out: Path


def _rel(split: str, stem: str) -> tuple[Path, Path]:
    """(image, label) paths of ``stem`` relative to a Cityscapes-layout root."""
    city = city_of(stem)
    return (Path("leftImg8bit") / split / city / f"{stem}_leftImg8bit.png",
            Path("gtFine") / split / city / f"{stem}_gtFine_labelTrainIds.png")


def _write_rgb(path: Path, image: np.ndarray) -> None:
    # Inside the temporary output tree (atomic_dir), so a plain write is safe.
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")


def _render_job(job: _Job) -> None:
    image, labels, depth, camera = read_sample(job.sample)
    if camera is None:
        camera = default_camera(*image.shape[:2])
    img_rel, label_rel = _rel(job.split, job.sample.stem)
    for severity in job.severities:
        folder = job.out / job.condition / str(severity)
        seed = condition_seed(job.seed, job.condition, severity, job.index)
        _write_rgb(folder / img_rel, render(image, depth, camera, job.condition, severity, seed, job.fog_betas,
                                                   labels))
        link_or_copy(job.sample.label_path, folder / label_rel)


def _folder_manifest(source: str, split: str, stems: list[str], size, condition: str, severity: int | None) -> dict:
    """A prepared-style manifest, so cityseg.dataset reads each folder like a prepared set."""
    return {
        "source": source, "condition": condition, "severity": severity,
        "splits": {split: {"count": len(stems), "cities": sorted({city_of(s) for s in stems}), "has_labels": True,
                           "has_depth": False, "size": size, "stems": stems}},
    }


def build_testbed(prepared: str | os.PathLike, out: str | os.PathLike, cfg: WeatherConfig, split: str,
                  workers: int = 0, progress: bool = True) -> dict:
    """Write the robustness test bed for the first ``cfg.images`` images of ``split``; returns its manifest.

    Deterministic per ``cfg.seed`` whatever ``workers`` is; ``out`` appears only once complete.
    """
    conditions = testbed_conditions(cfg)
    prepared_manifest = read_manifest(prepared)
    info = prepared_manifest["splits"].get(split)
    if info is None:
        raise DataError(f"{Path(prepared) / 'manifest.json'}: no split '{split}' to build the weather test bed from")
    if not info.get("has_labels", False):
        raise DataError(f"{Path(prepared) / 'manifest.json'}: split '{split}' has no labels; the robustness test bed "
                        "needs labelled images (set eval.split to a labelled split, e.g. val)")
    samples = sorted(full_res_samples(prepared, split), key=lambda s: s.stem)
    if cfg.images:
        samples = samples[: cfg.images]
    if not samples:
        raise DataError(f"{prepared}: split '{split}' has no images for the weather test bed")
    stems = [s.stem for s in samples]
    has_depth = bool(info.get("has_depth", False))
    sources = {s.stem: depth_source(has_depth, s.label_path is not None) for s in samples}
    camera_source = {s.stem: "camera" if s.camera_path is not None else "default" for s in samples}
    n_labels = sum(v == "label_prior" for v in sources.values())
    n_prior = sum(v == "flat_ground_prior" for v in sources.values())
    if n_labels or n_prior:
        log.warning("weather: %d of %d images of split '%s' have no depth (no disparity in the prepared set): "
                    "fog and rain use the label-guided depth prior with %s camera", n_labels + n_prior,
                    len(samples), split,
                    "their own" if all(v == "camera" for v in camera_source.values()) else "the typical Cityscapes")
    manifest = {
        "prepared": str(prepared), "source": prepared_manifest.get("source"), "split": split,
        "seed": cfg.seed, "images": len(stems), "stems": stems, "size": info.get("size"),
        "conditions": conditions, "fog_betas": [float(b) for b in cfg.fog_betas],
        "rain_levels": {str(k): {"alpha": RAIN_LEVELS[k].alpha, "beta": RAIN_LEVELS[k].beta}
                        for k in conditions.get("rain", [])},
        "corruptions": list(cfg.corruptions), "heldout": list(cfg.heldout), "clean": CLEAN,
        "depth_source": sources, "label_prior_images": n_labels, "flat_ground_prior_images": n_prior,
        "camera_source": camera_source,
    }
    with atomic_dir(out) as tmp:
        for sample in samples:  # clean images and labels of the same subset, for the clean reference Dice
            img_rel, label_rel = _rel(split, sample.stem)
            link_or_copy(sample.image_path, tmp / CLEAN / img_rel)
            link_or_copy(sample.label_path, tmp / CLEAN / label_rel)
        jobs = [_Job(i, s, split, name, tuple(sevs), tuple(float(b) for b in cfg.fog_betas), cfg.seed, tmp)
                for name, sevs in conditions.items() for i, s in enumerate(samples)]
        for _ in pmap(_render_job, jobs, workers, f"weather {split}", unit="job", progress=progress):
            pass
        source = manifest["source"]
        write_json(tmp / CLEAN / "manifest.json", _folder_manifest(source, split, stems, info.get("size"), CLEAN, None))
        for name, sevs in conditions.items():
            for sev in sevs:
                write_json(tmp / name / str(sev) / "manifest.json",
                           _folder_manifest(source, split, stems, info.get("size"), name, sev))
        write_json(tmp / "manifest.json", manifest)
    return manifest


def read_testbed(root: str | os.PathLike) -> dict:
    """The test bed's manifest; DataError if ``root`` is not one."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path}: weather test bed manifest not found (run the weather stage)")
    manifest = read_json(path)
    for key in ("split", "stems", "conditions", "clean"):
        if key not in manifest:
            raise DataError(f"{path}: not a weather test bed manifest (no '{key}')")
    if unknown := sorted(set(manifest["conditions"]) - set(CONDITION_NAMES)):
        raise DataError(f"{path}: unknown condition(s) {unknown} (known: {', '.join(CONDITION_NAMES)})")
    # JSON keys come back sorted; restore the test-bed order (fog, rain, then the corruptions).
    manifest["conditions"] = {k: manifest["conditions"][k] for k in CONDITION_NAMES if k in manifest["conditions"]}
    return manifest


def read_pair(folder: Path, split: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
    sample = next(s for s in full_res_samples(folder, split) if s.stem == stem)
    image, label, _, _ = read_sample(sample)
    return image, label


def condition_grid(weather_root: str | os.PathLike, path: str | os.PathLike, stem: Optional[str] = None,
                   cols: int = 4, entries: Optional[Sequence[tuple[str, int]]] = None) -> None:
    """One test-bed image under several conditions: ``entries`` of (condition, severity), with
    ("clean", 0) for the clear image; by default every condition at its harshest severity."""
    root = Path(weather_root)
    manifest = read_testbed(root)
    split = manifest["split"]
    stem = stem or manifest["stems"][0]
    if entries is None:
        entries = [(CLEAN, 0)] + [(name, max(sevs)) for name, sevs in manifest["conditions"].items()]
    panels = [(CLEAN, root / manifest["clean"]) if name == CLEAN else (f"{name} {sev}", root / name / str(sev))
              for name, sev in entries]
    n_rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.4 * cols, 1.9 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, folder) in zip(axes.ravel(), panels):
        ax.imshow(read_pair(folder, split, stem)[0])
        ax.set_title(_title(title, manifest), fontsize=8)
    save_figure(fig, path)


def _title(title: str, manifest: Mapping) -> str:
    name, _, sev = title.partition(" ")
    if name == "fog" and sev:
        title = f"fog, beta = {manifest['fog_betas'][int(sev) - 1]} 1/m"
    elif name == "rain" and sev:
        title = f"rain, level {sev}"
    return title + (" (held out)" if name in manifest.get("heldout", []) else "")
