"""Scoring a model on the robustness test bed (``cityseg.testbed``): Dice per condition and severity.

Also the figures of that score: Dice against severity, and predictions under the harshest conditions.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from cityseg import labels as L
from cityseg.evaluate import iter_predictions, json_number
from cityseg.inference import Predictor, predict_logits
from cityseg.metrics import DiceMeter, dice_per_class, image_dice
from cityseg.plots import plt, save_figure
from cityseg.postprocess import to_labels
from cityseg.progress import Bar, progress as progress_bar
from cityseg.testbed import CLEAN, CONDITION_NAMES, read_pair, read_testbed


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
    out: dict = {"dice_clean": json_number(dice_clean)}
    if images is not None:
        out["images"] = int(images)
    by_condition: dict[str, list[float]] = {}
    for (name, sev), value in dice.items():
        out[f"{name}_{sev}"] = json_number(value)
        by_condition.setdefault(name, []).append(value)
    for name, values in by_condition.items():
        out[f"{name}_mean"] = json_number(_mean(values))
    corrupted = _mean(dice.values())
    out["dice_corrupted_mean"] = json_number(corrupted)
    clean_ok = dice_clean is not None and not math.isnan(dice_clean) and dice_clean > 0
    out["retention"] = json_number(corrupted / dice_clean) if corrupted is not None and clean_ok else None
    out["dice_heldout_mean"] = json_number(_mean(v for (n, _), v in dice.items() if n in heldout))
    out["dice_seen_mean"] = json_number(_mean(v for (n, _), v in dice.items() if n not in heldout))
    return out


def _folder_dice(p: Predictor, folder: Path, split: str, batch_size: int, bar: Bar) -> float:
    meter = DiceMeter()
    for _, _, label, logits in iter_predictions(p.model, folder, split, p.input_size, batch_size, p.device, False):
        meter.update(to_labels(logits, p.min_area).cpu().numpy(), label, batched=False)
        bar.update()
    return meter.mean()


def evaluate_robustness(predictor: Predictor, weather_root: str | os.PathLike, batch_size: int,
                        heldout: Optional[Sequence[str]] = None, progress: bool = True) -> dict:
    """Competition Dice of ``predictor`` on every condition and severity of the test bed, plus the clean Dice
    of the same images; returns :func:`summarize_robustness`'s flat dict (nest it under "robustness").

    ``heldout`` defaults to the test bed's own ``weather.heldout``.
    """
    root = Path(weather_root)
    manifest = read_testbed(root)
    split, n = manifest["split"], len(manifest["stems"])
    heldout = list(manifest.get("heldout", []) if heldout is None else heldout)
    folders = [(name, int(sev)) for name, sevs in manifest["conditions"].items() for sev in sevs]
    bar = progress_bar(total=n * (1 + len(folders)), desc="robustness", unit="img", enabled=progress)
    clean = _folder_dice(predictor, root / manifest["clean"], split, batch_size, bar)
    dice = {}
    for name, sev in folders:
        dice[(name, sev)] = _folder_dice(predictor, root / name / str(sev), split, batch_size, bar)
        bar.set_postfix_str(f"{name}_{sev} {dice[(name, sev)]:.3f}")
    bar.close()
    return summarize_robustness(clean, dice, heldout, images=n)


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


def _grid_conditions(manifest: dict) -> list[tuple[str, int]]:
    """The harshest fog and rain of the test bed (whichever exist)."""
    conditions = manifest["conditions"]
    return [(name, max(conditions[name])) for name in ("fog", "rain") if conditions.get(name)]


def qualitative_grid(predictor: Predictor, weather_root: str | os.PathLike, path: str | os.PathLike, n: int = 2,
                     conditions: Optional[Sequence[tuple[str, int]]] = None) -> None:
    """Rows of (image | coloured prediction with its Dice | ground truth) for clean, the harshest fog and
    the harshest rain (or ``conditions``) of the first ``n`` test-bed images."""
    root = Path(weather_root)
    manifest = read_testbed(root)
    split = manifest["split"]
    rows = [(CLEAN, None)] + list(conditions if conditions is not None else _grid_conditions(manifest))
    stems = manifest["stems"][:n]
    fig, axes = plt.subplots(len(stems) * len(rows), 3, figsize=(10.5, 1.9 * len(stems) * len(rows)), squeeze=False)
    predictor.model.eval()
    r = 0
    for stem in stems:
        for name, sev in rows:
            folder = root / manifest["clean"] if name == CLEAN else root / name / str(sev)
            image, label = read_pair(folder, split, stem)
            logits = predict_logits(predictor.model, [image], predictor.input_size, predictor.device)[0]
            pred = to_labels(logits, predictor.min_area).cpu().numpy()
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
