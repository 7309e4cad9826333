"""Score a checkpoint on a prepared split at the original label resolution.

Predictions are made at the network's input size (the size it was trained at), the logits are
upsampled bilinearly to the label's original resolution (`cityseg.inference`), and every metric is
computed there, as the competition server does.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np
import torch

from cityseg import labels as L
from cityseg.config import HOLDOUT_SPLIT, ConfigError, EvalConfig
from cityseg.dataset import HOLDOUT_HINT, full_res_samples, load_cache, read_manifest, read_sample
from cityseg.flops import count_flops, count_macs_ptflops, count_params
from cityseg.inference import Predictor, predict_logits
from cityseg.io import DataError
from cityseg.metrics import ConfusionMatrix, DiceMeter
from cityseg.postprocess import to_labels
from cityseg.progress import progress as progress_bar

__all__ = ["Predictor", "choose_min_area", "complexity", "evaluate_model", "iter_predictions", "json_number",
           "predict_logits", "score_split", "select_and_score", "selection_split", "summary_line", "sweep_min_area",
           "trivial_predictors", "tune_min_area"]

FLOP_SIZE = (1024, 2048)  # the course server counts FLOPs on one 1x3x1024x2048 input
TRIVIAL_CHUNK = 32  # training-cache images per step of trivial_predictors
CLASS_KEYS = tuple(name.replace(" ", "_") for name in L.CLASS_NAMES)  # metric keys: no spaces


def json_number(v: Any) -> float | None:
    """A metric as it goes into a metrics JSON: rounded to 6 digits; None for None, NaN and inf."""
    if v is None:
        return None
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def iter_predictions(model: torch.nn.Module, prepared: str | os.PathLike, split: str, input_size: tuple[int, int],
                     batch_size: int, device: torch.device, progress: bool = True
                     ) -> Iterator[tuple[str, np.ndarray, np.ndarray, torch.Tensor]]:
    """Yield (stem, image, label, logits (19,H,W) on ``device``) for every image of ``split`` at full resolution.

    The logits stay on the device: post-process them there (`postprocess.to_labels`) and move only the uint8
    labels to the CPU, not 19 float32 maps of the full frame (160 MB per 1024x2048 image).
    """
    samples = full_res_samples(prepared, split)
    model.eval()
    for start in progress_bar(range(0, len(samples), batch_size), desc=f"evaluate {split}", unit="batch", enabled=progress):
        chunk = samples[start : start + batch_size]
        data = [read_sample(s) for s in chunk]
        images = [d[0] for d in data]
        # Cityscapes frames share one size; odd-sized user data falls back to one image at a time.
        sizes = {im.shape[:2] for im in images}
        if len(sizes) == 1:
            logits = predict_logits(model, images, input_size, device)
        else:
            logits = [predict_logits(model, [im], input_size, device)[0] for im in images]
        for i, (sample, (image, label, _, _)) in enumerate(zip(chunk, data)):
            yield sample.stem, image, label, logits[i]


def trivial_predictors(prepared: str | os.PathLike, chunk: int = TRIVIAL_CHUNK) -> dict[str, np.ndarray]:
    """Reference predictors from the train labels: the majority class everywhere, and the
    per-pixel most frequent class (a "where things usually are" prior), both at cache size."""
    labels = load_cache(prepared, "train").labels  # (N, h, w) uint8, memory-mapped
    per_pixel = np.zeros((L.NUM_CLASSES, *labels.shape[1:]), np.int64)  # (19, h, w) counts
    # A chunk of images at a time: comparing the whole split at once would allocate N x h x w (1.5 GB for
    # Cityscapes' 2975 frames at 512x1024), so memory would grow with the training set.
    for start in range(0, len(labels), chunk):
        part = np.asarray(labels[start : start + chunk])
        for c in range(L.NUM_CLASSES):
            per_pixel[c] += (part == c).sum(0)
    counts = per_pixel.sum(axis=(1, 2))
    return {"majority": np.full(labels.shape[1:], counts.argmax(), np.uint8), "prior": per_pixel.argmax(0).astype(np.uint8)}


def evaluate_model(predictor: Predictor, prepared: str | os.PathLike, split: str, batch_size: int,
                   progress: bool = True) -> tuple[dict, np.ndarray]:
    """Score ``predictor`` on ``split``; returns (metrics, 19x19 confusion matrix [gt, pred]).

    ``dice`` is the competition Dice (per image, then the mean over images); predictions go through
    the predictor's small-class removal (``postprocess.to_labels(.., predictor.min_area)``).
    """
    dice, cm = DiceMeter(), ConfusionMatrix(L.NUM_CLASSES, L.IGNORE_INDEX)
    trivial = trivial_predictors(prepared)
    trivial_dice = {name: DiceMeter() for name in trivial}
    for _, _, label, logits in iter_predictions(predictor.model, prepared, split, predictor.input_size, batch_size,
                                                predictor.device, progress):
        pred = to_labels(logits, predictor.min_area).cpu().numpy()
        dice.update(pred, label)
        cm.update(pred, label)
        for name, ref in trivial.items():
            trivial_dice[name].update(cv2.resize(ref, label.shape[::-1], interpolation=cv2.INTER_NEAREST), label)
    res = cm.compute()
    metrics = {
        "images": len(dice.per_image()),
        "dice": round(float(dice.mean()), 6),
        "miou": round(float(res["miou"]), 6),
        "pixel_acc": round(float(res["pixel_accuracy"]), 6),
        "class_iou": {key: json_number(v) for key, v in zip(CLASS_KEYS, res["iou_per_class"])},
        "class_dice": {key: json_number(v) for key, v in zip(CLASS_KEYS, dice.per_class())},
        "group_iou": {k: json_number(v) for k, v in res["group_iou"].items()},
        "category_iou": {k: json_number(v) for k, v in res["category_iou"].items()},
        "trivial": {f"dice_{name}": round(float(m.mean()), 6) for name, m in trivial_dice.items()},
    }
    return metrics, cm.matrix


def complexity(model: torch.nn.Module) -> dict:
    """FLOPs as the course server counts them (FlopCounterMode, 1x3x1024x2048), ptflops MACs, parameters."""
    return {
        "gflops": round(count_flops(model, FLOP_SIZE) / 1e9, 3),
        "gmacs_ptflops": round(count_macs_ptflops(model, FLOP_SIZE) / 1e9, 3),
        "params_m": round(count_params(model) / 1e6, 4),
    }


def score_split(predictor: Predictor, prepared: str | os.PathLike, split: str, batch_size: int,
                plots: str | os.PathLike, title: str) -> dict:
    """`evaluate_model` + `complexity` as one metrics dict, with the per-class and confusion plots under ``plots``."""
    from cityseg.plots import confusion_plot, per_class_plot

    metrics, confusion = evaluate_model(predictor, prepared, split, batch_size)
    metrics.update(complexity(predictor.model))
    plots = Path(plots)
    per_class_plot(metrics, plots / "per_class.png", plots / "per_class.csv", title=title)
    confusion_plot(confusion, plots / "confusion.png", title=title)
    return metrics


# --------------------------------------------------------------------------------------------
# Honest selection: every tuned value is chosen on a split the reported score never sees
# --------------------------------------------------------------------------------------------
def selection_split(setting: str, reported: str, splits: Iterable[str]) -> str:
    """``eval.selection_split`` as one of the prepared ``splits``: auto = val, or holdout when val is the reported
    split (real Cityscapes; prepare makes it with data.holdout_cities). ConfigError when it is the reported split
    (a value chosen there would flatter the score) or when the prepared data lacks it."""
    splits = list(splits)
    split = (HOLDOUT_SPLIT if reported == "val" else "val") if setting == "auto" else setting
    if split == reported:
        raise ConfigError(f"eval.selection_split: '{split}' is the reported split (eval.split); "
                          "tuned values must be chosen on another split")
    if split not in splits:
        fix = HOLDOUT_HINT if split == HOLDOUT_SPLIT else "set eval.selection_split to one it has"
        raise ConfigError(f"eval.selection_split ({setting}) is '{split}', which the prepared data lacks (have: "
                          f"{', '.join(splits)}): {fix}")
    return split


def sweep_min_area(predictor: Predictor, prepared: str | os.PathLike, split: str, candidates: list[float],
                   batch_size: int, progress: bool = True) -> dict[float, float]:
    """{candidate: competition Dice on ``split``} of every small-class threshold, rounded as the metrics are.

    The network runs once per image; every candidate post-processes the same logits.
    """
    meters = {float(c): DiceMeter() for c in candidates}
    for stem, _, label, logits in iter_predictions(predictor.model, prepared, split, predictor.input_size, batch_size,
                                                   predictor.device, progress):
        if label is None:
            raise DataError(f"{prepared}: split '{split}' has no labels ({stem}); the selection split needs them")
        for c, meter in meters.items():
            meter.update(to_labels(logits, c).cpu().numpy(), label)
    if not all(len(m) for m in meters.values()):
        raise DataError(f"{prepared}: split '{split}' has no images to choose eval.min_class_area on")
    return {c: round(float(m.mean()), 6) for c, m in meters.items()}


def choose_min_area(dice: dict[float, float]) -> float:
    """The candidate with the highest Dice; on a tie the smaller one (it changes fewer pixels).

    A NaN Dice (no scorable image) never wins.
    """
    return min(dice, key=lambda c: (-dice[c] if math.isfinite(dice[c]) else math.inf, c))


def tune_min_area(predictor: Predictor, prepared: str | os.PathLike, split: str, candidates: list[float],
                  batch_size: int, progress: bool = True) -> tuple[Predictor, dict[float, float]]:
    """(``predictor`` with the threshold `choose_min_area` picks on ``split``, every candidate's Dice there).

    Small-class removal is part of a recipe: a model trained without it (``train.min_class_area: 0``, the course
    baseline) is scored without it, so the baseline stays the course's and a method's gain includes its
    post-processing. Only models trained with it have their threshold chosen among ``candidates``.
    """
    candidates = candidates if predictor.min_area > 0 else [0.0]
    dice = sweep_min_area(predictor, prepared, split, candidates, batch_size, progress)
    return dataclasses.replace(predictor, min_area=choose_min_area(dice)), dice


def select_and_score(predictor: Predictor, prepared: str | os.PathLike, reported: str, cfg: EvalConfig,
                     plots: str | os.PathLike, title: str) -> tuple[dict, Predictor]:
    """Choose the small-class threshold on the selection split, then `score_split` the reported split with it.

    Returns (the metrics with their ``selection`` record, the predictor carrying the chosen threshold, which
    every later score of the model must use).
    """
    split = selection_split(cfg.selection_split, reported, read_manifest(prepared)["splits"])
    predictor, dice = tune_min_area(predictor, prepared, split, cfg.min_class_area, cfg.batch_size)
    metrics = score_split(predictor, prepared, reported, cfg.batch_size, plots, title)
    metrics["selection"] = {"split": split, "min_class_area": predictor.min_area,
                            "min_class_area_dice": {str(c): json_number(d) for c, d in dice.items()},
                            "checkpoint_epoch": predictor.epoch, "checkpoint_split": predictor.epoch_split}
    return metrics, predictor


def summary_line(name: str, split: str, m: dict) -> str:
    """The evaluate stage's one-line summary of a metrics dict."""
    rob, ood, sel = m["robustness"], m["ood"], m["selection"]
    return (f"evaluate@{name} on {split}: Dice {m['dice']:.4f}, mIoU {m['miou']:.4f}, {m['gflops']:.1f} GFLOPs, "
            f"{m['params_m']:.2f} M params, efficiency {m['efficiency']['score']:.3f}, corrupted Dice "
            f"{rob['dice_corrupted_mean']:.4f}, OOD score {ood['score']:.4f} (accept-all {ood['score_accept_all']:.4f}); "
            f"chosen on {sel['split']}: min_class_area {sel['min_class_area']:g}, OOD method {sel['ood_method']}")
