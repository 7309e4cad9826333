"""Score a checkpoint on a prepared split at the original label resolution.

Predictions are made at the network's input size (the size it was trained at), the logits are
upsampled bilinearly to the label's original resolution, and every metric is computed there,
as the competition server does.
"""

from __future__ import annotations

import os
from typing import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cityseg import labels as L
from cityseg.dataset import full_res_samples, load_cache, read_sample
from cityseg.flops import count_flops, count_macs_ptflops, count_params
from cityseg.metrics import ConfusionMatrix, DiceMeter
from cityseg.postprocess import to_labels
from cityseg.transforms import normalize

FLOP_SIZE = (1024, 2048)
CLASS_KEYS = tuple(name.replace(" ", "_") for name in L.CLASS_NAMES)  # metric keys: no spaces  # the course server counts FLOPs on one 1x3x1024x2048 input


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, images: list[np.ndarray], input_size: tuple[int, int],
                   device: torch.device) -> torch.Tensor:
    """(N,H,W,3) uint8 images of one size -> (N,19,H,W) float logits at the images' own size."""
    h, w = images[0].shape[:2]
    batch = torch.stack([normalize(cv2.resize(im, input_size[::-1], interpolation=cv2.INTER_LINEAR)) for im in images])
    batch = batch.to(device)
    use_bf16 = device.type == "cuda"
    if use_bf16:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        logits = model(batch)
    return F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)


def iter_predictions(model: torch.nn.Module, prepared: str | os.PathLike, split: str, input_size: tuple[int, int],
                     batch_size: int, device: torch.device, progress: bool = True
                     ) -> Iterator[tuple[str, np.ndarray, np.ndarray, torch.Tensor]]:
    """Yield (stem, image, label, logits (19,H,W) on CPU) for every image of ``split`` at full resolution."""
    samples = full_res_samples(prepared, split)
    model.eval()
    for start in tqdm(range(0, len(samples), batch_size), desc=f"evaluate {split}", unit="batch", disable=not progress):
        chunk = samples[start : start + batch_size]
        data = [read_sample(s) for s in chunk]
        images = [d[0] for d in data]
        # Cityscapes frames share one size; odd-sized user data falls back to one image at a time.
        sizes = {im.shape[:2] for im in images}
        if len(sizes) == 1:
            logits = predict_logits(model, images, input_size, device).cpu()
        else:
            logits = [predict_logits(model, [im], input_size, device).cpu()[0] for im in images]
        for i, (sample, (image, label, _, _)) in enumerate(zip(chunk, data)):
            yield sample.stem, image, label, logits[i]


def trivial_predictors(prepared: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reference predictors from the train labels: the majority class everywhere, and the
    per-pixel most frequent class (a "where things usually are" prior), both at cache size."""
    labels = np.asarray(load_cache(prepared, "train").labels)
    counts = np.bincount(labels.ravel(), minlength=256)[: L.NUM_CLASSES]
    per_pixel = np.stack([(labels == c).sum(0) for c in range(L.NUM_CLASSES)])  # (19, h, w)
    return {"majority": np.full(labels.shape[1:], counts.argmax(), np.uint8), "prior": per_pixel.argmax(0).astype(np.uint8)}


def evaluate_model(model: torch.nn.Module, prepared: str | os.PathLike, split: str, input_size: tuple[int, int],
                   batch_size: int, device: torch.device, progress: bool = True, min_area: float = 0.0
                   ) -> tuple[dict, np.ndarray]:
    """Score ``model`` on ``split``; returns (metrics, 19x19 confusion matrix [gt, pred]).

    ``min_area``: small-class removal of the predictions (``postprocess.to_labels``)."""
    dice, cm = DiceMeter(), ConfusionMatrix(L.NUM_CLASSES, L.IGNORE_INDEX)
    trivial = trivial_predictors(prepared)
    trivial_dice = {name: DiceMeter() for name in trivial}
    for _, _, label, logits in iter_predictions(model, prepared, split, input_size, batch_size, device, progress):
        pred = to_labels(logits, min_area).numpy()
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
        "class_iou": {key: _num(v) for key, v in zip(CLASS_KEYS, res["iou_per_class"])},
        "class_dice": {key: _num(v) for key, v in zip(CLASS_KEYS, dice.per_class())},
        "group_iou": {k: _num(v) for k, v in res["group_iou"].items()},
        "category_iou": {k: _num(v) for k, v in res["category_iou"].items()},
        "trivial": {f"dice_{name}": round(float(m.mean()), 6) for name, m in trivial_dice.items()},
    }
    return metrics, cm.matrix


def _num(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else round(v, 6)


def complexity(model: torch.nn.Module) -> dict:
    """FLOPs as the course server counts them (FlopCounterMode, 1x3x1024x2048), ptflops MACs, parameters."""
    return {
        "gflops": round(count_flops(model, FLOP_SIZE) / 1e9, 3),
        "gmacs_ptflops": round(count_macs_ptflops(model, FLOP_SIZE) / 1e9, 3),
        "params_m": round(count_params(model) / 1e6, 4),
    }
