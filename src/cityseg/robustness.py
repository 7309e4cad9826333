"""The robustness test bed (the ``weather`` stage) and the evaluation of a model on it.

Test bed layout under ``<out>`` (every folder a Cityscapes-layout root that any tool can read)::

    manifest.json                                   conditions, severities, β, stems, split, depth source
    clean/                                          the clean images of the same subset (hard links)
    <condition>/<severity>/manifest.json            readable by cityseg.dataset.full_res_samples
    <condition>/<severity>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    <condition>/<severity>/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png   (hard links, unchanged)

Conditions: ``fog`` (severity k = the k-th of ``weather.fog_betas``, Foggy Cityscapes with the
prepared depth and camera), ``rain`` (severity = Rain Cityscapes level 1..3) and every corruption of
``weather.corruptions`` at every ``weather.severities`` (Cityscapes-C style, cityseg.corruptions).
Images are rendered at the prepared (original) resolution, where the evaluation scores them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from cityseg import labels as L
from cityseg.config import ConfigError, WeatherConfig
from cityseg.dataset import Sample, city_of, full_res_samples, read_manifest, read_sample
from cityseg.evaluate import iter_predictions, predict_logits
from cityseg.io import DataError, atomic_dir, link_or_copy, read_json, write_json
from cityseg.metrics import DiceMeter, dice_per_class, image_dice
from cityseg.postprocess import to_labels
from cityseg.plots import plt, save_figure
# After cityseg.evaluate: its transforms import sets NO_ALBUMENTATIONS_UPDATE (no PyPI query offline).
from cityseg.corruptions import CORRUPTIONS, corrupt  # noqa: E402
from cityseg.weather import RAIN_LEVELS, default_camera, fog, rain

log = logging.getLogger(__name__)

# Fixed order of every possible condition: a condition's seed uses its index here, so adding or
# removing a corruption in params.yaml leaves the images of the other conditions unchanged.
CONDITION_NAMES: tuple[str, ...] = ("fog", "rain", *CORRUPTIONS)
CLEAN = "clean"
DEPTH_MEASURED, DEPTH_PRIOR = "depth", "flat_ground_prior"


# --------------------------------------------------------------------------- conditions and seeds


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
           seed: int, fog_betas: Sequence[float]) -> np.ndarray:
    """One image under ``condition`` at ``severity``; depth None = flat-ground prior. uint8 (H, W, 3)."""
    if condition == "fog":
        return fog(image, depth, camera, float(fog_betas[severity - 1]))
    if condition == "rain":
        return rain(image, depth, camera, int(severity), seed=seed)
    return corrupt(image, condition, int(severity), seed)


# --------------------------------------------------------------------------- the weather stage


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
    image, _, depth, camera = read_sample(job.sample)
    if camera is None:
        camera = default_camera(*image.shape[:2])
    img_rel, label_rel = _rel(job.split, job.sample.stem)
    for severity in job.severities:
        folder = job.out / job.condition / str(severity)
        seed = condition_seed(job.seed, job.condition, severity, job.index)
        _write_rgb(folder / img_rel, render(image, depth, camera, job.condition, severity, seed, job.fog_betas))
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
    depth_source = {s.stem: DEPTH_MEASURED if has_depth else DEPTH_PRIOR for s in samples}
    camera_source = {s.stem: "camera" if s.camera_path is not None else "default" for s in samples}
    n_prior = sum(v == DEPTH_PRIOR for v in depth_source.values())
    if n_prior:
        log.warning("weather: %d of %d images of split '%s' have no depth (no disparity in the prepared set): "
                    "fog and rain use the flat-ground depth prior with %s camera", n_prior, len(samples), split,
                    "their own" if all(v == "camera" for v in camera_source.values()) else "the typical Cityscapes")
    manifest = {
        "prepared": str(prepared), "source": prepared_manifest.get("source"), "split": split,
        "seed": cfg.seed, "images": len(stems), "stems": stems, "size": info.get("size"),
        "conditions": conditions, "fog_betas": [float(b) for b in cfg.fog_betas],
        "rain_levels": {str(k): {"alpha": RAIN_LEVELS[k].alpha, "beta": RAIN_LEVELS[k].beta}
                        for k in conditions.get("rain", [])},
        "corruptions": list(cfg.corruptions), "heldout": list(cfg.heldout), "clean": CLEAN,
        "depth_source": depth_source, "flat_ground_prior_images": n_prior, "camera_source": camera_source,
    }
    workers = max(1, min(workers or os.cpu_count() or 1, len(samples) * len(conditions)))
    with atomic_dir(out) as tmp:
        for sample in samples:  # clean images and labels of the same subset, for the clean reference Dice
            img_rel, label_rel = _rel(split, sample.stem)
            link_or_copy(sample.image_path, tmp / CLEAN / img_rel)
            link_or_copy(sample.label_path, tmp / CLEAN / label_rel)
        jobs = [_Job(i, s, split, name, tuple(sevs), tuple(float(b) for b in cfg.fog_betas), cfg.seed, tmp)
                for name, sevs in conditions.items() for i, s in enumerate(samples)]
        bar = tqdm(total=len(jobs), desc=f"weather {split}", unit="job", disable=not progress)
        if workers == 1:
            for job in jobs:
                _render_job(job)
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for _ in pool.map(_render_job, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                    bar.update()
        bar.close()
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


# --------------------------------------------------------------------------- evaluation


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 6)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def summarize_robustness(dice_clean: float, dice: Mapping[tuple[str, int], float], heldout: Sequence[str] = (),
                         images: int | None = None) -> dict:
    """Flat metrics from the clean Dice and the Dice per (condition, severity).

    Keys: ``dice_clean``; ``<condition>_<severity>``; ``<condition>_mean``; ``dice_corrupted_mean``
    (every condition-severity entry weighs the same); ``retention`` = corrupted mean / clean;
    ``dice_heldout_mean`` / ``dice_seen_mean`` over the entries of conditions in / not in ``heldout``
    (None when there are none); ``images``. NaN Dice (no scorable image) is written as None.
    """
    out: dict = {"dice_clean": _num(dice_clean)}
    if images is not None:
        out["images"] = int(images)
    by_condition: dict[str, list[float]] = {}
    for (name, sev), value in dice.items():
        out[f"{name}_{sev}"] = _num(value)
        by_condition.setdefault(name, []).append(value)
    for name, values in by_condition.items():
        out[f"{name}_mean"] = _num(_mean(values))
    corrupted = _mean(dice.values())
    out["dice_corrupted_mean"] = _num(corrupted)
    clean_ok = dice_clean is not None and not math.isnan(dice_clean) and dice_clean > 0
    out["retention"] = _num(corrupted / dice_clean) if corrupted is not None and clean_ok else None
    out["dice_heldout_mean"] = _num(_mean(v for (n, _), v in dice.items() if n in heldout))
    out["dice_seen_mean"] = _num(_mean(v for (n, _), v in dice.items() if n not in heldout))
    return out


def _folder_dice(model: torch.nn.Module, folder: Path, split: str, input_size: tuple[int, int], batch_size: int,
                 device: torch.device, bar: tqdm, min_area: float) -> float:
    meter = DiceMeter()
    for _, _, label, logits in iter_predictions(model, folder, split, input_size, batch_size, device, progress=False):
        meter.update(to_labels(logits, min_area).numpy(), label, batched=False)
        bar.update()
    return meter.mean()


def evaluate_robustness(model: torch.nn.Module, input_size: tuple[int, int], weather_root: str | os.PathLike,
                        device: torch.device, batch_size: int = 4, heldout: Optional[Sequence[str]] = None,
                        progress: bool = True, min_area: float = 0.0) -> dict:
    """Competition Dice of ``model`` on every condition and severity of the test bed, plus the clean Dice
    of the same images; returns :func:`summarize_robustness`'s flat dict (nest it under "robustness").

    ``heldout`` defaults to the test bed's own ``weather.heldout``; ``min_area`` as in ``postprocess.to_labels``.
    """
    root = Path(weather_root)
    manifest = read_testbed(root)
    split, n = manifest["split"], len(manifest["stems"])
    heldout = list(manifest.get("heldout", []) if heldout is None else heldout)
    folders = [(name, int(sev)) for name, sevs in manifest["conditions"].items() for sev in sevs]
    bar = tqdm(total=n * (1 + len(folders)), desc="robustness", unit="img", disable=not progress)
    model.eval()
    clean = _folder_dice(model, root / manifest["clean"], split, input_size, batch_size, device, bar, min_area)
    dice = {}
    for name, sev in folders:
        dice[(name, sev)] = _folder_dice(model, root / name / str(sev), split, input_size, batch_size, device, bar,
                                         min_area)
        bar.set_postfix_str(f"{name}_{sev} {dice[(name, sev)]:.3f}")
    bar.close()
    return summarize_robustness(clean, dice, heldout, images=n)


# --------------------------------------------------------------------------- figures and tables


def _entries(results: Mapping) -> dict[str, list[tuple[int, float]]]:
    """condition -> [(severity, Dice)] from the flat keys ``<condition>_<severity>``."""
    pattern = re.compile(rf"({'|'.join(map(re.escape, CONDITION_NAMES))})_(\d+)")
    out: dict[str, list[tuple[int, float]]] = {}
    for key, value in results.items():
        if (m := pattern.fullmatch(key)) and value is not None:
            out.setdefault(m.group(1), []).append((int(m.group(2)), float(value)))
    return {k: sorted(v) for k, v in out.items()}


def severity_plot(results: Mapping, path: str | os.PathLike, title: str = "", heldout: Sequence[str] = ()) -> None:
    """Dice against severity, one line per condition (held-out dashed), clean Dice as a reference line."""
    entries = _entries(results)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    cmap = plt.get_cmap("tab20")
    for i, (name, points) in enumerate(entries.items()):
        sev, val = zip(*points)
        dashed = name in heldout
        ax.plot(sev, val, marker="o", ms=3.5, lw=1.4, color=cmap(i % 20), ls="--" if dashed else "-",
                label=f"{name} (held out)" if dashed else name)
    if results.get("dice_clean") is not None:
        ax.axhline(results["dice_clean"], color="black", lw=1.2, ls=":", label=f"clean ({results['dice_clean']:.3f})")
    ax.set_xlabel("severity")
    ax.set_ylabel("competition Dice")
    ax.set_xticks(range(1, 1 + max((p[0] for pts in entries.values() for p in pts), default=1)))
    ax.set_ylim(0, max(0.05, min(1.0, 1.1 * max([results.get("dice_clean") or 0]
                                                  + [v for pts in entries.values() for _, v in pts]))))
    ax.grid(alpha=0.3)
    summary = ""
    if results.get("retention") is not None:
        summary = f": corrupted mean {results['dice_corrupted_mean']:.3f}, retention {results['retention']:.0%}"
    ax.set_title(f"{title}{summary}", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    save_figure(fig, path)


def _read_pair(folder: Path, split: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
    sample = next(s for s in full_res_samples(folder, split) if s.stem == stem)
    image, label, _, _ = read_sample(sample)
    return image, label


def _grid_conditions(manifest: dict) -> list[tuple[str, int]]:
    """The harshest fog and rain of the test bed (whichever exist)."""
    conditions = manifest["conditions"]
    return [(name, max(conditions[name])) for name in ("fog", "rain") if conditions.get(name)]


def qualitative_grid(model: torch.nn.Module, input_size: tuple[int, int], weather_root: str | os.PathLike,
                     device: torch.device, path: str | os.PathLike, n: int = 2,
                     conditions: Optional[Sequence[tuple[str, int]]] = None, min_area: float = 0.0) -> None:
    """Rows of (image | coloured prediction with its Dice | ground truth) for clean, the harshest fog and
    the harshest rain (or ``conditions``) of the first ``n`` test-bed images."""
    root = Path(weather_root)
    manifest = read_testbed(root)
    split = manifest["split"]
    rows = [(CLEAN, None)] + list(conditions if conditions is not None else _grid_conditions(manifest))
    stems = manifest["stems"][:n]
    fig, axes = plt.subplots(len(stems) * len(rows), 3, figsize=(10.5, 1.9 * len(stems) * len(rows)), squeeze=False)
    model.eval()
    r = 0
    for stem in stems:
        for name, sev in rows:
            folder = root / manifest["clean"] if name == CLEAN else root / name / str(sev)
            image, label = _read_pair(folder, split, stem)
            pred = to_labels(predict_logits(model, [image], input_size, device)[0], min_area).cpu().numpy()
            score = image_dice(dice_per_class(pred, label))
            pred_shown = L.colorize(np.where(label == L.IGNORE_INDEX, L.IGNORE_INDEX, pred).astype(np.uint8))
            for ax, shown, text in zip(axes[r], (image, pred_shown, L.colorize(label)),
                                       (f"{stem}: {name}" + ("" if sev is None else f" {sev}"),
                                        f"prediction (Dice {score:.3f})", "ground truth")):
                ax.imshow(shown)
                ax.set_title(text, fontsize=8)
                ax.set_axis_off()
            r += 1
    save_figure(fig, path)


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
        ax.imshow(_read_pair(folder, split, stem)[0])
        ax.set_title(_title(title, manifest), fontsize=8)
    save_figure(fig, path)


def _title(title: str, manifest: Mapping) -> str:
    name, _, sev = title.partition(" ")
    if name == "fog" and sev:
        title = f"fog, beta = {manifest['fog_betas'][int(sev) - 1]} 1/m"
    elif name == "rain" and sev:
        title = f"rain, level {sev}"
    return title + (" (held out)" if name in manifest.get("heldout", []) else "")


def compare_table(metrics_by_benchmark: Mapping[str, Mapping]) -> str:
    """Markdown table of clean Dice, corrupted mean, retention, held-out and seen means per benchmark.

    Each value may be a whole metrics JSON (with a "robustness" entry) or the robustness dict itself.
    """
    columns = (("dice_clean", "clean Dice", "{:.3f}"), ("dice_corrupted_mean", "corrupted mean", "{:.3f}"),
               ("retention", "retention", "{:.1%}"), ("dice_heldout_mean", "held-out mean", "{:.3f}"),
               ("dice_seen_mean", "seen mean", "{:.3f}"))
    lines = ["| benchmark | " + " | ".join(c[1] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for name, metrics in metrics_by_benchmark.items():
        rob = metrics.get("robustness", metrics)
        cells = ["–" if rob.get(key) is None else fmt.format(rob[key]) for key, _, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
